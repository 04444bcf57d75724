"""The frame-level copy index: per-keyframe fingerprints of every catalogue video.

Same-source search (finding where a video's footage was copied from) matches frames, not whole
videos, so it needs its own index beside the video stores: one row per keyframe (video id, its
version, the keyframe's time and shot, a fingerprint vector). `FrameStore` is that index's
contract; `plugins/milvus/frames.py` implements it. Versions follow the video stores' rule: a
write or a removal older than what is stored changes nothing, so a replayed or reordered event
cannot bring back frames of a newer or deleted version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

Shot = tuple[float, float]


@dataclass(frozen=True)
class FrameSet:
    """The fingerprinted keyframes of one video, in time order."""

    video_id: str
    version: int
    times: np.ndarray  # (n,) seconds, ascending
    vectors: np.ndarray  # (n, d) float32, L2-normalised fingerprints
    shots: list[Shot] = field(default_factory=list)  # per keyframe: the shot that holds it ([] if unknown)

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or len(self.times) != len(self.vectors):
            raise ValueError(f"frame set of {self.video_id!r}: {len(self.times)} times for vectors {self.vectors.shape}")
        if self.shots and len(self.shots) != len(self.times):
            raise ValueError(f"frame set of {self.video_id!r}: {len(self.shots)} shots for {len(self.times)} frames")


@dataclass(frozen=True)
class FrameHit:
    """One nearest catalogue keyframe of a query keyframe (inner product of fingerprints)."""

    video_id: str
    t: float
    score: float


class FrameStore(Protocol):
    """Where fingerprints live. Errors follow the store classes of `core.errors`: a service that
    cannot answer raises an InfrastructureError subclass (the caller pauses and retries)."""

    name: str

    def ensure(self) -> None:
        """Create the collection (idempotent)."""

    def write(self, frames: FrameSet) -> bool:
        """Replace the video's frames with these unless a newer version is stored; False when
        skipped as stale. An empty set records the version with no frames."""

    def remove(self, video_id: str, version: int) -> bool:
        """Delete the video's frames of `version` or older; False when a newer version is stored."""

    def apply(self, writes: Sequence[FrameSet], removals: Sequence[tuple[str, int]]) -> int:
        """`write` and `remove` for a batch (at most one operation per video), in a few requests;
        returns how many were stale."""

    def search(self, vectors: np.ndarray, k: int, exclude: Sequence[str] = ()) -> list[list[FrameHit]]:
        """The k nearest catalogue keyframes of each query row, best first; `exclude` drops videos
        (a video never matches itself at ingest)."""

    def frames(self, video_ids: Sequence[str]) -> dict[str, FrameSet]:
        """Stored frame sets of these videos (missing ids are absent)."""

    def count(self) -> int:
        """Stored keyframe rows (for storage figures)."""

    def drop(self) -> None:
        """Remove the collection (tests, benchmarks)."""

    def close(self) -> None: ...
