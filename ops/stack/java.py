"""Find a JDK of a given major version: Kafka 4 needs 17+, OpenSearch 3 needs 21+."""

from __future__ import annotations

import os
import re
from pathlib import Path

from vidsearch.ops.stack.errors import JavaNotFoundError

JVM_ROOTS = (Path("/usr/lib/jvm"), Path("/opt/java"), Path("/usr/local/lib/jvm"))


def java_major(home: Path) -> int | None:
    """Major version from the JDK's `release` file (no JVM start needed)."""
    try:
        text = (home / "release").read_text()
    except OSError:
        return None
    match = re.search(r'JAVA_VERSION="(\d+)(?:\.(\d+))?', text)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def candidate_homes() -> list[Path]:
    homes: list[Path] = []
    if env_home := os.environ.get("JAVA_HOME"):
        homes.append(Path(env_home))
    for root in JVM_ROOTS:
        if root.is_dir():
            homes.extend(sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()))
    return homes


def find_java_home(service: str, min_major: int, configured: Path | None = None, prefer: str = "lowest") -> Path:
    """A configured home must qualify; otherwise pick among the installed JDKs (`prefer` the
    lowest qualifying major, the most conservative, or the highest)."""
    if configured is not None:
        major = java_major(configured)
        if major is None or major < min_major or not (configured / "bin/java").exists():
            raise JavaNotFoundError(service, f"configured JDK {configured} is not a JDK {min_major}+ (found {major})")
        return configured
    found = [(m, h) for h in candidate_homes() if (m := java_major(h)) and m >= min_major and (h / "bin/java").exists()]
    if not found:
        seen = ", ".join(f"{h} ({java_major(h)})" for h in candidate_homes()) or "none"
        raise JavaNotFoundError(
            service,
            f"needs a JDK {min_major} or newer; installed JDKs: {seen}. "
            f"Install one (e.g. Debian openjdk-{min_major}-jdk-headless) or set its home in the stack settings.",
        )
    found.sort(key=lambda mh: mh[0], reverse=(prefer == "highest"))
    return found[0][1]
