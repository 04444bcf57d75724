"""Building the document a video event becomes: the one place event metadata meets features and
vectors, so every store (and every write path: live ingestion, bulk loads, re-embedding) writes
exactly the same fields and vectors."""

from __future__ import annotations

from typing import Any

import numpy as np

from vidsearch.core.documents import IndexDoc
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.fusion.default import fuse, modality_vectors


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
