"""Serve a trained balanced model from its folder with onnxruntime (no torch).

A model folder holds `video_tower.onnx`, `query_tower.onnx`, `card.json` (version id, encoder
versions, data hash, metrics, NCL temperature) and `ncl_bank.npy` (query-tower vectors of the
training queries: the bank NCL biases are computed against until a query log replaces it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.core.errors import DeploymentError
from vidsearch.encoders.balanced.export import VIDEO_OUTPUTS
from vidsearch.encoders.balanced.inputs import VideoArrays, video_arrays
from vidsearch.encoders.balanced.prior import default_fused, toward_prior
from vidsearch.encoders.errors import EncoderError
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.onnx.serve import ort_session
from vidsearch.encoders.text import normalize_rows


class ModelFolderError(EncoderError, DeploymentError):
    """A model folder is missing a file or holds an unreadable one."""


@dataclass
class BalancedModel:
    root: Path
    card: dict[str, Any]
    video: Any
    query: Any
    ncl_bank: np.ndarray | None = None

    @property
    def version(self) -> str:
        return str(self.card.get("version", self.root.name))

    @property
    def prior_weight(self) -> float:
        """How far the outputs are pulled back toward the default fusion (encoders/balanced/prior.py);
        0 for models trained before the card said so."""
        return float(self.card.get("prior", {}).get("weight", 0.0))

    @property
    def ncl_tau(self) -> float:
        return float(self.card.get("ncl", {}).get("tau", 0.05))

    @classmethod
    def load(cls, root: str | Path, threads: int = 2, require_card: bool = True) -> BalancedModel:
        root = Path(root)
        for name in ("video_tower.onnx", "query_tower.onnx") + (("card.json",) if require_card else ()):
            if not (root / name).is_file():
                raise ModelFolderError(f"{root}: missing {name} (is this a `vidsearch train` output?)")
        card = json.loads((root / "card.json").read_text()) if (root / "card.json").is_file() else {}
        bank = np.load(root / "ncl_bank.npy") if (root / "ncl_bank.npy").is_file() else None
        return cls(root, card, ort_session(root / "video_tower.onnx", threads), ort_session(root / "query_tower.onnx", threads), bank)

    def embed_arrays(self, arrays: VideoArrays) -> dict[str, np.ndarray]:
        """{"fused", "text", "vision", "audio"}: (n, 384) each, unit length or zero."""
        outs = self.video.run(list(VIDEO_OUTPUTS), arrays.as_feed())
        out = dict(zip(VIDEO_OUTPUTS, outs, strict=True))
        if self.prior_weight:
            out["fused"] = toward_prior(out["fused"], default_fused(arrays), self.prior_weight)
        return out

    def embed_videos(self, features: list[VideoFeatures]) -> dict[str, np.ndarray]:
        return self.embed_arrays(video_arrays(features))

    def embed_query_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """MiniLM query embeddings (n, 384) -> the fused space."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        out = self.query.run(["embedding"], {"query": vectors})[0]
        if self.prior_weight:
            out = toward_prior(out, normalize_rows(vectors), self.prior_weight)
        return out
