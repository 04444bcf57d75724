"""Video events with precomputed features for tests and benchmarks: real English captions from
Debian's Tux Paint stamps as titles, deterministic random unit vectors as base features."""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.ocr import OcrLine
from vidsearch.encoders.speech import Segment

STAMPS = Path("/usr/share/tuxpaint/stamps")


@lru_cache(maxsize=1)
def captions() -> list[str]:
    caps = [p.read_text(errors="replace").splitlines()[0].strip() for p in sorted(STAMPS.rglob("*.txt"))]
    return [c for c in caps if c] or ["a short video clip"]


def _unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def synthetic_features(seed: int, keyframes: int = 2) -> VideoFeatures:
    rng = np.random.default_rng(seed)
    caption = captions()[seed % len(captions())]
    return VideoFeatures(
        video_id=f"syn-{seed}",
        duration_s=float(5 + seed % 60),
        transcript=[Segment(0.0, 2.0, caption)] if seed % 3 == 0 else [],
        ocr=[OcrLine(caption.split()[0].upper(), 1.0, 0.9)] if seed % 5 == 0 else [],
        keyframe_times=np.arange(keyframes, dtype=np.float32) * 2.0,
        frame_features=_unit(rng, keyframes, 1280),
        frame_bridge=_unit(rng, keyframes, 384),
        frame_top_classes=rng.integers(0, 1000, (keyframes, 5)).astype(np.int16),
        frame_top_probs=np.full((keyframes, 5), 0.2, np.float32),
        text_transcript=_unit(rng, 384) if seed % 3 == 0 else np.zeros(384, np.float32),
        text_ocr=_unit(rng, 384) if seed % 5 == 0 else np.zeros(384, np.float32),
        audio_vector=_unit(rng, 384),
    )


def features_b64(feats: VideoFeatures) -> str:
    return base64.b64encode(feats.to_bytes()).decode()


def upsert(video_id: str, version: int, seed: int | None = None, **fields: Any) -> bytes:
    seed = seed if seed is not None else abs(hash(video_id)) % 10**6
    caption = captions()[seed % len(captions())]
    event = {
        "schema_version": 1,
        "op": "upsert",
        "video_id": video_id,
        "version": version,
        "title": caption,
        "description": f"{caption} ({video_id})",
        "tags": caption.lower().split()[:3],
        "language": "en",
        "duration": float(5 + seed % 60),
        "features": features_b64(synthetic_features(seed)),
        **fields,
    }
    return json.dumps(event).encode()


def delete(video_id: str, version: int) -> bytes:
    return json.dumps({"schema_version": 1, "op": "delete", "video_id": video_id, "version": version}).encode()
