"""The frame-index stage of every write: keyframe fingerprints for same-source search.

Fingerprints are computed from the base features the document is built from (the backbone's
pooled vector per keyframe), so live ingestion, bulk loads and re-embedding all index the same
frames. They are written after every video store took the batch and before offsets are
committed (the writer's caller commits only after `DocumentWriter.write` returns), so a video is
never searchable by copy without being searchable at all, and an outage of the frame index
pauses the batch like any store's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from vidsearch.core.documents import IndexDoc, Operation, Tombstone
from vidsearch.core.frames import FrameSet, FrameStore
from vidsearch.core.settings import Settings
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.fingerprint import Fingerprinter, configured_fingerprinter, frame_set

log = logging.getLogger(__name__)


class FrameIndex:
    def __init__(self, store: FrameStore, fingerprinter: Fingerprinter) -> None:
        self.store, self.fingerprinter = store, fingerprinter

    @property
    def name(self) -> str:
        return f"frames:{self.store.name}"

    def frames_of(self, video_id: str, version: int, feats: VideoFeatures) -> FrameSet:
        return frame_set(video_id, version, feats.keyframe_times, feats.frame_features, feats.shots, self.fingerprinter)

    def ensure(self) -> None:
        self.store.ensure()

    def write(self, ops: Sequence[Operation]) -> int:
        """Frames of the upserts, removals of the deletes; returns how many were stale."""
        writes = [op.frames for op in ops if isinstance(op, IndexDoc) and op.frames is not None]
        removals = [(op.video_id, op.version) for op in ops if isinstance(op, Tombstone)]
        return self.store.apply(writes, removals)

    def close(self) -> None:
        self.store.close()


def open_frame_index(settings: Settings) -> FrameIndex | None:
    """The configured frame index, or None when `copies.enabled` is off. A whitening file that
    cannot be read or an unknown store name fails here, at start-up."""
    if not settings.copies.enabled:
        return None
    from vidsearch.plugins.backends import open_frame_store

    fp = configured_fingerprinter(settings)
    return FrameIndex(open_frame_store(settings, fp.version, fp.dim), fp)
