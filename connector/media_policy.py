"""Which media URIs an event may name, and turning an allowed one into a local file.

Events come from other teams' producers: a URI is untrusted input. Local paths must resolve
(symlinks included) inside a configured root; `file://` follows the same rule; http(s) is off by
default and, when on, limited to allow-listed hosts whose addresses are all public (no SSRF into
the private network), with size and time limits on the download.
"""

from __future__ import annotations

import ipaddress
import socket
import tempfile
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from vidsearch.connector.errors import MediaPolicyError
from vidsearch.ops.settings import MediaPolicySettings


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def resolve_local(raw: str, policy: MediaPolicySettings) -> Path:
    if "\x00" in raw:
        raise MediaPolicyError("media path contains a NUL byte")
    if not policy.roots:
        raise MediaPolicyError("local media is disabled: no media roots are configured")
    candidate = Path(raw)
    if ".." in candidate.parts:
        raise MediaPolicyError(f"media path {raw!r} contains '..'")
    if not candidate.is_absolute():
        raise MediaPolicyError(f"media path {raw!r} must be absolute")
    roots = tuple(r.resolve() for r in policy.roots)
    resolved = candidate.resolve()  # follows symlinks: a link out of the root is an escape
    if not _inside(resolved, roots):
        raise MediaPolicyError(f"media path {raw!r} resolves outside the allowed roots")
    return resolved


def _check_host(host: str, port: int, policy: MediaPolicySettings) -> None:
    if host.lower() not in {h.lower() for h in policy.http_hosts}:
        raise MediaPolicyError(f"host {host!r} is not in the allow-list")
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise MediaPolicyError(f"cannot resolve host {host!r}: {exc}") from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        # is_global also excludes shared address space (100.64/10, cloud metadata) and NAT64.
        if not policy.allow_private_networks and (not addr.is_global or addr.is_multicast):
            raise MediaPolicyError(f"host {host!r} resolves to non-public address {addr}")


@contextmanager
def local_media(uri: str, policy: MediaPolicySettings) -> Iterator[Path]:
    """A local path for `uri` for the duration of the block (downloads are removed after)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("", "file"):
        raw = unquote(parts.path) if scheme == "file" else uri
        if scheme == "file" and parts.netloc not in ("", "localhost"):
            raise MediaPolicyError(f"file URI with a remote host {parts.netloc!r}")
        yield resolve_local(raw, policy)
        return
    if scheme not in ("http", "https"):
        raise MediaPolicyError(f"scheme {scheme!r} is not allowed")
    if not policy.allow_http:
        raise MediaPolicyError("http(s) media is disabled")
    if not parts.hostname:
        raise MediaPolicyError(f"URI {uri!r} has no host")
    _check_host(parts.hostname, parts.port or (443 if scheme == "https" else 80), policy)
    with tempfile.NamedTemporaryFile(dir=policy.download_dir, suffix=Path(parts.path).suffix[:8]) as tmp:
        try:
            with httpx.stream("GET", uri, timeout=policy.http_timeout_s, follow_redirects=False) as resp:
                if resp.status_code != 200:
                    raise MediaPolicyError(f"download failed with HTTP {resp.status_code}")
                size = 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > policy.http_max_bytes:
                        raise MediaPolicyError(f"download exceeds {policy.http_max_bytes} bytes")
                    tmp.write(chunk)
        except httpx.HTTPError as exc:
            raise MediaPolicyError(f"download failed: {exc}") from exc
        tmp.flush()
        yield Path(tmp.name)
