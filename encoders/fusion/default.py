"""The documented default video tower, used until a trained balanced model is registered.

Every vector here lives in the text encoder's space, so one query embedding can search them all:
  text    = metadata text (title, description, tags)
  speech  = ASR transcript text
  ocr     = on-screen text
  visual  = mean of the keyframes' bridge vectors
  fused   = L2-normalised mean of the non-empty ones among (text, speech, ocr, visual), each
            weighted equally; an absent modality contributes nothing rather than a zero bias.
The audio vector (Whisper encoder space) is not text-queryable; it is stored for the trained
fusion head, which learns to map it.
"""

from __future__ import annotations

import numpy as np

from vidsearch.encoders.features import VideoFeatures

DIM = 384
MODALITIES = ("text", "speech", "ocr", "visual")
VERSION = "default-fusion-v1"


def unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n > 0 and np.isfinite(n) else np.zeros_like(v, dtype=np.float32)


def modality_vectors(feats: VideoFeatures) -> dict[str, np.ndarray]:
    visual = feats.frame_bridge.mean(axis=0) if len(feats.frame_bridge) else np.zeros(DIM, np.float32)
    return {
        "text": unit(feats.text_metadata),
        "speech": unit(feats.text_transcript),
        "ocr": unit(feats.text_ocr),
        "visual": unit(visual),
        "audio": unit(feats.audio_vector),
    }


def fuse(vectors: dict[str, np.ndarray]) -> np.ndarray:
    present = [vectors[m] for m in MODALITIES if np.any(vectors[m])]
    if not present:
        return np.zeros(DIM, np.float32)
    return unit(np.mean(present, axis=0))
