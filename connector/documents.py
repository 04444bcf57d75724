"""What the sinks write: one `IndexDoc` per live video, one `Tombstone` per delete.

Built once per event by the shared pipeline; each store adapter maps it onto its own schema, so
the two stores can never disagree on what a video's vectors or fields are.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.fusion.default import fuse, modality_vectors

VECTOR_FIELDS = ("fused", "text", "speech", "ocr", "visual", "audio")


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
    keyframes: list[dict[str, Any]] = field(default_factory=list)  # {"t": s, "vector": [...]}
    segments: list[dict[str, Any]] = field(default_factory=list)  # {"start", "end", "text"}
    extra: dict[str, Any] = field(default_factory=dict)
    model_version: str = ""
    media_uri: str | None = None
    # While a re-embed runs, live writes go to two model versions, each with its own model's
    # vectors: version id -> vectors. A version not listed gets `vectors` / `model_version`.
    by_version: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    ncl_bias: float = 0.0  # tau*beta from NCL (0 until biases are computed); see plugins.retrieval.ncl

    def for_version(self, version: str) -> IndexDoc:
        vectors = self.by_version.get(version)
        return self if vectors is None else replace(self, vectors=vectors, model_version=version, by_version={})

    @property
    def ncl_vector(self) -> np.ndarray:
        """[fused; tau*beta]: inner product with [q; 1] ranks by the NCL score (docs/architecture.md, "Algorithms")."""
        return np.append(self.vectors["fused"], np.float32(self.ncl_bias)).astype(np.float32)

    @property
    def lexical_text(self) -> str:
        """Everything BM25 should match, in one field (Milvus has one BM25 input)."""
        return "\n".join(x for x in (self.title, self.description, " ".join(self.tags), self.transcript, self.ocr) if x)


@dataclass(frozen=True)
class Tombstone:
    video_id: str
    version: int


Operation = IndexDoc | Tombstone


def build_doc(event: Any, feats: VideoFeatures, model_version: str,
              vectors: dict[str, np.ndarray] | None = None) -> IndexDoc:
    """`event` is a validated VideoUpsert; its metadata wins over what the features carry.
    `vectors` come from the model version's embedder (default: the documented default fusion)."""
    if vectors is None:
        vectors = modality_vectors(feats)
        vectors["fused"] = fuse(vectors)
    return IndexDoc(
        video_id=event.video_id,
        version=int(event.version),
        title=event.title,
        description=event.description,
        tags=list(event.tags),
        language=event.language,
        duration=event.duration if event.duration is not None else (feats.duration_s or None),
        published_at=event.published_at,
        transcript=feats.transcript_text,
        ocr=feats.ocr_text,
        vectors=vectors,
        keyframes=[{"t": float(t), "vector": v.tolist()} for t, v in zip(feats.keyframe_times, feats.frame_bridge)],
        segments=[{"start": s.start, "end": s.end, "text": s.text} for s in feats.transcript],
        extra=event.extra,
        model_version=model_version,
        media_uri=event.media_uri,
    )


def latest_per_video(ops: list[tuple[int, Operation]]) -> list[tuple[int, Operation]]:
    """Within one batch keep, per video, the operation with the highest version (ties: the later
    offset), so a batch never writes an older state after a newer one."""
    best: dict[str, tuple[int, Operation]] = {}
    for idx, op in ops:
        cur = best.get(op.video_id)
        if cur is None or (op.version, idx) >= (cur[1].version, cur[0]):
            best[op.video_id] = (idx, op)
    return sorted(best.values(), key=lambda x: x[0])
