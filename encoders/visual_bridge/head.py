"""Serving the bridge head: numpy only (two matrix products), loaded from a non-pickle npz.

The file holds the weights and a JSON card (backbone version, text encoder version, corpus hash,
training settings). The head is only valid for the backbone and text encoder it was trained
between, so loading it against others is a broken deployment, refused at start-up.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vidsearch.encoders.errors import EncoderError
from vidsearch.encoders.text import normalize_rows

if TYPE_CHECKING:
    from vidsearch.encoders.features import VideoFeatures

HEAD_FORMAT = 1


class BridgeHeadError(EncoderError):
    """A bridge head that does not fit this deployment (other backbone or text encoder, bad file)."""


@dataclass(frozen=True)
class BridgeHead:
    w1: np.ndarray  # (backbone_dim, hidden)
    b1: np.ndarray
    w2: np.ndarray  # (hidden, text_dim)
    b2: np.ndarray
    card: dict

    @property
    def version(self) -> str:
        digest = hashlib.sha256()
        for a in (self.w1, self.b1, self.w2, self.b2):
            digest.update(np.ascontiguousarray(a, np.float32).tobytes())
        return f"bridgehead@{digest.hexdigest()[:12]}"

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """(n, backbone_dim) pooled features -> (n, text_dim) unit vectors in the text space."""
        if len(features) == 0:
            return np.zeros((0, self.w2.shape[1]), np.float32)
        hidden = np.maximum(features.astype(np.float32) @ self.w1 + self.b1, 0.0)
        return normalize_rows(hidden @ self.w2 + self.b2).astype(np.float32)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, w1=self.w1, b1=self.b1, w2=self.w2, b2=self.b2,
                 card=np.array(json.dumps({"format": HEAD_FORMAT, **self.card}, sort_keys=True)))

    @classmethod
    def load(cls, path: Path) -> BridgeHead:
        try:
            with np.load(path, allow_pickle=False) as z:
                card = json.loads(str(z["card"]))
                w1, b1, w2, b2 = (z[k].astype(np.float32) for k in ("w1", "b1", "w2", "b2"))
                head = cls(w1, b1, w2, b2, card)
        except (OSError, KeyError, ValueError) as exc:
            raise BridgeHeadError(f"{path}: not a bridge head file: {exc}") from exc
        if card.get("format") != HEAD_FORMAT:
            raise BridgeHeadError(f"{path}: head format {card.get('format')}, this build reads {HEAD_FORMAT}")
        if head.w1.shape[1] != head.w2.shape[0] or head.b1.shape != (head.w1.shape[1],) or head.b2.shape != (head.w2.shape[1],):
            raise BridgeHeadError(f"{path}: inconsistent weight shapes")
        return head

    def check_fits(self, backbone_version: str, text_version: str) -> None:
        want = (self.card.get("backbone"), self.card.get("text"))
        if want != (backbone_version, text_version):
            raise BridgeHeadError(f"bridge head was trained for backbone {want[0]} and text encoder {want[1]}; "
                                  f"this deployment runs {backbone_version} and {text_version}")


class PretrainedBridge:
    """The bridge interface of `vision.TextBridge`, from pooled features instead of class names."""

    def __init__(self, head: BridgeHead, text_version: str) -> None:
        self.head = head
        self.version = f"{head.version}/{text_version}"

    def from_vision(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        return self.head(features)

    def from_record(self, feats: VideoFeatures) -> np.ndarray:
        """Head-only re-embedding: the bridge from a record's stored pooled features."""
        return self.head(feats.frame_features)
