"""Fetch artifacts from Maven Central with the ordinary `mvn` client, verified.

Maven's resolver runs with strict checksums (`-C`), so every jar is checked against the checksum
files Maven Central publishes. A few artifacts (the OpenSearch integ-test zip) are published with
no checksum file at all; for those we fall back to a SHA-256 pinned in `resources/pins.json` and
refuse to proceed without a pin. Downloads land in the Maven local repository (outside the repo),
so a second run reuses them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from vidsearch.ops.stack.errors import DownloadError

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
NO_CHECKSUMS = "no checksums available"
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>vidsearch.stack</groupId><artifactId>{name}</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>{deps}</dependencies>
</project>
"""


def _pins() -> dict[str, str]:
    return json.loads(resources.files("vidsearch.ops.stack").joinpath("resources/pins.json").read_text())


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _mvn(service: str, args: list[str], cwd: Path, repo: Path) -> subprocess.CompletedProcess[str]:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DownloadError(service, "Maven (`mvn`) is not installed; install Debian's `maven` package")
    cmd = [mvn, "-B", "-q", f"-Dmaven.repo.local={repo}", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1800)


def _reason(output: str) -> str:
    """The one line of Maven's output that says why, without the plugin boilerplate."""
    if "not found" in output or "Could not find artifact" in output:
        return "not served by the Maven repository"
    for line in output.splitlines():
        if line.startswith("[ERROR]") and len(line) > 8:
            return line.removeprefix("[ERROR] ").split(": ", 1)[-1][:300]
    return "mvn failed"


def _pom_dir(name: str, deps: list[tuple[str, str, str]]) -> tempfile.TemporaryDirectory[str]:
    tmp = tempfile.TemporaryDirectory(prefix="vidsearch-mvn-")
    dep_xml = "".join(
        f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in deps
    )
    Path(tmp.name, "pom.xml").write_text(_POM.format(name=name, deps=dep_xml))
    return tmp


def copy_dependencies(service: str, deps: list[tuple[str, str, str]], out_dir: Path, repo: Path) -> list[Path]:
    """Resolve `deps` with their runtime closure (strict checksums) into `out_dir`."""
    with _pom_dir(service, deps) as tmp:
        res = _mvn(
            service,
            ["-C", f"{DEPENDENCY_PLUGIN}:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={out_dir}"],
            Path(tmp),
            repo,
        )
    if res.returncode != 0:
        raise DownloadError(service, f"Maven could not resolve {deps}:\n{(res.stdout + res.stderr)[-3000:]}")
    return sorted(out_dir.glob("*.jar"))


def fetch_artifact(service: str, coords: str, out_dir: Path, repo: Path) -> Path:
    """Fetch one artifact `group:artifact:version:type` into `out_dir`, verified either by
    Maven's published checksums or, where none are published, by our pin."""
    group, artifact, version, packaging = coords.split(":")
    target = out_dir / f"{artifact}-{version}.{packaging}"
    out_dir.mkdir(parents=True, exist_ok=True)
    pin = _pins().get(coords)
    with _pom_dir(service, []) as tmp:
        args = [f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={coords}", f"-DoutputDirectory={out_dir}"]
        res = _mvn(service, ["-C", *args], Path(tmp), repo)
        output = res.stdout + res.stderr
        if res.returncode != 0 and NO_CHECKSUMS in output:
            if pin is None:
                raise DownloadError(service, f"Maven Central publishes no checksum for {coords} and no pin is recorded")
            res = _mvn(service, ["-c", *args], Path(tmp), repo)
            output = res.stdout + res.stderr
    if res.returncode != 0 or not target.exists():
        raise DownloadError(service, f"could not fetch {coords}: {_reason(output)}\n{output[-2000:]}")
    if pin is not None and (actual := sha256(target)) != pin:
        target.unlink()
        raise DownloadError(service, f"{coords} has SHA-256 {actual}, expected the pinned {pin}")
    return target
