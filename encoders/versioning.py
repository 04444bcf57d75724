"""Encoder version ids: a short hash of the weights and the config that produced a vector.

Stored with every feature record, so re-embedding knows whether base features are still valid
(same backbone) or must be re-extracted (a new backbone).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any


@lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def version_id(name: str, weight_files: list[Path], config: dict[str, Any]) -> str:
    """`name@<12 hex>` over the weight files' contents and the JSON of `config`."""
    digest = hashlib.sha256(name.encode())
    for path in sorted(weight_files):
        st = path.stat()
        digest.update(_file_digest(str(path), st.st_size, st.st_mtime).encode())
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    return f"{name}@{digest.hexdigest()[:12]}"
