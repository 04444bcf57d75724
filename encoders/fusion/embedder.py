"""Video embedders: base features -> the vectors the stores keep, for one model version.

The indexer, the evaluation and re-embedding all go through this one interface, so a new fusion
head changes what is stored without touching the pipeline or the sinks (docs/architecture.md, "Data flow").
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.fusion.default import VERSION as DEFAULT_VERSION
from vidsearch.encoders.fusion.default import fuse, modality_vectors


class VideoEmbedder(Protocol):
    version: str

    def vectors(self, features: list[VideoFeatures]) -> list[dict[str, np.ndarray]]:
        """Per video: fused, text, speech, ocr, visual, audio (384-d, unit or zero)."""


class DefaultEmbedder:
    version = DEFAULT_VERSION

    def vectors(self, features: list[VideoFeatures]) -> list[dict[str, np.ndarray]]:
        out = []
        for f in features:
            v = modality_vectors(f)
            v["fused"] = fuse(v)
            out.append(v)
        return out


class BalancedEmbedder:
    """The trained towers give fused/text/visual/audio; speech and OCR stay raw text vectors (the
    per-modality routes for them are queried with the raw text-encoder vector)."""

    def __init__(self, model) -> None:  # noqa: ANN001 - encoders.balanced.serve.BalancedModel
        self.model = model
        self.version = model.version

    def vectors(self, features: list[VideoFeatures]) -> list[dict[str, np.ndarray]]:
        if not features:
            return []
        out = self.model.embed_videos(features)
        rows = []
        for i, f in enumerate(features):
            base = modality_vectors(f)
            rows.append({"fused": out["fused"][i], "text": out["text"][i], "speech": base["speech"], "ocr": base["ocr"],
                         "visual": out["vision"][i], "audio": out["audio"][i]})
        return rows
