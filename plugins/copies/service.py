"""Copy search as the CLI and the HTTP API serve it: a query by indexed video id, or by a media
file (a video or a still image), against the configured frame index.

Models load lazily: a query by id needs no backbone (the query's fingerprints are in the index),
a query by media loads the configured vision backbone once per service.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from vidsearch.core.errors import DataError
from vidsearch.core.frames import FrameStore
from vidsearch.core.settings import Settings
from vidsearch.encoders.fingerprint import Fingerprinter, configured_fingerprinter
from vidsearch.plugins.copies.search import CopyMatch, CopySearcher, copy_params


class UnknownVideoError(DataError):
    """A copy query named a video id the frame index does not hold."""

    stage = "copies"


class CopyService:
    def __init__(self, settings: Settings) -> None:
        from vidsearch.plugins.backends import open_frame_store

        self.settings = settings
        self.fingerprinter: Fingerprinter = configured_fingerprinter(settings)
        self.store: FrameStore = open_frame_store(settings, self.fingerprinter.version, self.fingerprinter.dim)
        self._vision: Any = None

    def _searcher(self, method: str | None) -> CopySearcher:
        params = copy_params(self.settings.copies)
        return CopySearcher(self.store, replace(params, method=method) if method else params)

    def by_id(self, video_id: str, method: str | None = None, limit: int = 10) -> list[CopyMatch]:
        frames = self.store.frames([video_id]).get(video_id)
        if frames is None:
            raise UnknownVideoError(f"video {video_id!r} has no frames in the copy index "
                                    "(not ingested, or ingested with copies.enabled = false)")
        return self._searcher(method).search(frames, exclude=[video_id], limit=limit)

    def by_media(self, path: Path, method: str | None = None, limit: int = 10) -> list[CopyMatch]:
        from vidsearch.encoders.copy_query import media_query

        if self._vision is None:
            from vidsearch.encoders.serving import load_vision_encoder

            self._vision = load_vision_encoder(self.settings)
        query, mirrored = media_query(path, self._vision, self.fingerprinter, self.settings.media)
        return self._searcher(method).search(query, mirrored=mirrored, limit=limit)

    def close(self) -> None:
        self.store.close()


def as_json(matches: list[CopyMatch]) -> dict[str, Any]:
    return {"matches": [m.as_dict() for m in matches]}
