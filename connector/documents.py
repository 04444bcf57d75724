"""Building the document a video event becomes: the one place event metadata meets features and
vectors, so every store (and every write path: live ingestion, bulk loads, re-embedding) writes
exactly the same fields and vectors."""

from __future__ import annotations

from typing import Any

import numpy as np

from vidsearch.core.documents import IndexDoc
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.fusion.default import fuse, modality_vectors


def keyframe_entries(feats: VideoFeatures) -> list[dict[str, Any]]:
    """{"t", "vector"(, "shot": [start, end])}: the bridge vector moments score, and the shot the
    keyframe lies in when the record has shots (older records have none: no "shot" key)."""
    out = []
    for t, vector in zip(feats.keyframe_times, feats.frame_bridge):
        entry: dict[str, Any] = {"t": float(t), "vector": vector.tolist()}
        shot = feats.shot_at(float(t))
        if shot is not None:
            entry["shot"] = [shot[0], shot[1]]
        out.append(entry)
    return out


def segment_entries(feats: VideoFeatures) -> list[dict[str, Any]]:
    """Timed text moments can point at: transcript segments ("kind": "asr") and on-screen text
    ("kind": "ocr", the lines read on one keyframe joined, spanning that keyframe's shot, or the
    keyframe's instant when the record has no shots), in time order."""
    out: list[dict[str, Any]] = [{"start": s.start, "end": s.end, "text": s.text, "kind": "asr"} for s in feats.transcript]
    by_time: dict[float, list[str]] = {}
    for line in feats.ocr:
        by_time.setdefault(float(line.t), []).append(line.text)
    for t, lines in by_time.items():
        start, end = feats.shot_at(t) or (t, t)
        out.append({"start": start, "end": end, "text": " ".join(lines), "kind": "ocr", "t": t})
    return sorted(out, key=lambda s: (s["start"], s["kind"]))


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
        keyframes=keyframe_entries(feats),
        segments=segment_entries(feats),
        extra=event.extra,
        model_version=model_version,
        media_uri=event.media_uri,
    )
