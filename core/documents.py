"""The document model every store writes: one `IndexDoc` per live video, one `Tombstone` per delete.

Built once per event by the shared pipeline; each store adapter maps it onto its own schema, so
the two stores can never disagree on what a video's vectors or fields are.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from vidsearch.core.frames import FrameSet

VECTOR_FIELDS = ("fused", "text", "speech", "ocr", "visual", "audio")
DIM = 384  # every stored vector (text-encoder space); `vec_ncl` is DIM + 1
# What a store returns for a stored document (`VideoStore.fetch` / `scan`): the event's metadata,
# what moments need, and the model version whose vectors it holds. A field a backend does not keep
# (Milvus keeps no separate transcript or OCR text) comes back None.
STORED_FIELDS = ("video_id", "version", "model_version", "title", "description", "tags", "language", "duration",
                 "published_at", "media_uri", "keyframes", "segments", "extra", "transcript", "ocr", "text_lengths", "copies")


@dataclass
class IndexDoc:
    video_id: str
    version: int
    title: str
    description: str
    tags: list[str]
    language: str | None
    duration: float | None
    published_at: datetime | None
    transcript: str
    ocr: str
    vectors: dict[str, np.ndarray]
    keyframes: list[dict[str, Any]] = field(default_factory=list)  # {"t": s, "vector": [...], "shot": [start, end]}
    segments: list[dict[str, Any]] = field(default_factory=list)  # {"start", "end", "text", "kind": "asr"|"ocr"[, "t"]}
    extra: dict[str, Any] = field(default_factory=dict)
    model_version: str = ""
    media_uri: str | None = None
    # While a re-embed runs, live writes go to two model versions, each with its own model's
    # vectors: version id -> vectors. A version not listed gets `vectors` / `model_version`.
    by_version: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    # Catalogue videos this one shares footage with (the ingest-time copy check), best first.
    copies: list[str] = field(default_factory=list)
    # The keyframe fingerprints for the frame index (not a video-store field; see core/frames.py).
    frames: FrameSet | None = None
    ncl_bias: float = 0.0  # tau*beta from NCL (0 until biases are computed); see plugins.retrieval.ncl

    def for_version(self, version: str) -> IndexDoc:
        vectors = self.by_version.get(version)
        return self if vectors is None else replace(self, vectors=vectors, model_version=version, by_version={})

    @property
    def ncl_vector(self) -> np.ndarray:
        """[fused; tau*beta]: inner product with [q; 1] ranks by the NCL score (docs/architecture.md, "Algorithms")."""
        return np.append(self.vectors["fused"], np.float32(self.ncl_bias)).astype(np.float32)

    @property
    def text_lengths(self) -> list[int]:
        """Characters of title, description, transcript and OCR: how much text the video carries,
        which the fusion gate weighs (a video with no text cannot be found by BM25, so its dense
        score should count for more). Stored with every document and returned with every hit."""
        return [len(self.title or ""), len(self.description or ""), len(self.transcript or ""), len(self.ocr or "")]

    @property
    def lexical_text(self) -> str:
        """Everything BM25 should match, in one field (Milvus has one BM25 input)."""
        return "\n".join(x for x in (self.title, self.description, " ".join(self.tags), self.transcript, self.ocr) if x)


@dataclass(frozen=True)
class Tombstone:
    video_id: str
    version: int


Operation = IndexDoc | Tombstone


def latest_per_video(ops: list[tuple[int, Operation]]) -> list[tuple[int, Operation]]:
    """Within one batch keep, per video, the operation with the highest version (ties: the later
    offset), so a batch never writes an older state after a newer one."""
    best: dict[str, tuple[int, Operation]] = {}
    for idx, op in ops:
        cur = best.get(op.video_id)
        if cur is None or (op.version, idx) >= (cur[1].version, cur[0]):
            best[op.video_id] = (idx, op)
    return sorted(best.values(), key=lambda x: x[0])
