"""Where base features are kept for re-embedding: one `VideoFeatures` record per video.

A folder by default (point it at a shared volume in production); writes are atomic (temp file +
rename), so a consumer killed mid-write never leaves a torn record, and a record is only
replaced by an equal or newer version.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from vidsearch.encoders.features import VideoFeatures


class FileFeatureStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, video_id: str) -> Path:
        digest = hashlib.sha256(video_id.encode()).hexdigest()
        return self.root / digest[:2] / f"{digest}.npz"

    def put(self, video_id: str, version: int, feats: VideoFeatures) -> None:
        path = self._path(video_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        version_file = path.with_suffix(".version")
        try:
            if int(version_file.read_text()) > version:
                return
        except (FileNotFoundError, ValueError):
            pass
        for target, data in ((path, feats.to_bytes()), (version_file, str(version).encode())):
            fd, tmp = tempfile.mkstemp(dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)

    def get(self, video_id: str) -> VideoFeatures | None:
        path = self._path(video_id)
        return VideoFeatures.load(path) if path.exists() else None

    def delete(self, video_id: str) -> None:
        path = self._path(video_id)
        path.unlink(missing_ok=True)
        path.with_suffix(".version").unlink(missing_ok=True)
