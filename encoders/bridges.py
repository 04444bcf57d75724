"""Which bridge from pictures to the text space a deployment runs (`encoders.bridge`).

Every kind answers `from_vision` (at extraction) and `from_record` (re-encoding a stored record
when only the text side changed), so extraction, the feature cache and re-embedding never ask
which one they hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.text import TextEncoder, normalize_rows

SHIPPED_HEAD = Path(__file__).parent / "visual_bridge" / "bridge_head.npz"


class Bridge(Protocol):
    version: str

    def from_vision(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray: ...

    def from_record(self, feats: VideoFeatures) -> np.ndarray: ...


def join_vectors(head: np.ndarray, labels: np.ndarray, weight: float) -> np.ndarray:
    """Per-keyframe mix of the head's and the label bridge's unit vectors, renormalised. Pure so the
    weight sweep on validation and serving compute the same thing."""
    if len(head) == 0:
        return np.zeros((0, head.shape[1] if head.ndim == 2 else labels.shape[1]), np.float32)
    return normalize_rows(weight * head + (1.0 - weight) * labels).astype(np.float32)


class JoinedBridge:
    """Both bridges at once. The head knows concepts ImageNet has no class for (emoji, clip-art,
    drawn stamps); the label bridge knows the photographs the head's corpus never showed. On the
    Tux Paint validation split the mix beats either alone, so it is a kind of its own."""

    def __init__(self, head: Bridge, labels: Bridge, weight: float) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"join weight {weight} is not in [0, 1]")
        self.head, self.labels, self.weight = head, labels, weight
        self.version = f"joined{weight:g}:{head.version}+{labels.version}"

    def from_vision(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        return join_vectors(self.head.from_vision(features, logits), self.labels.from_vision(features, logits), self.weight)

    def from_record(self, feats: VideoFeatures) -> np.ndarray:
        return join_vectors(self.head.from_record(feats), self.labels.from_record(feats), self.weight)


def load_bridge(settings: Settings, text: TextEncoder, backbone_version: str) -> Bridge:
    """The configured bridge; a pretrained head for another backbone or text encoder fails here,
    at start-up, with `BridgeHeadError` (a broken deployment, not bad data). The joined kind takes
    its weight from settings, else from the head's card (where `vidsearch pretrain --join-data`
    put the one chosen on validation), else 0.5."""
    from vidsearch.encoders.vision import TextBridge

    cfg = settings.encoders

    def labels() -> TextBridge:
        return TextBridge(text, cfg.bridge_top_k, settings.stack.cache_dir / "bridge")

    if cfg.bridge == "imagenet":
        return labels()
    from vidsearch.encoders.visual_bridge.head import BridgeHead, PretrainedBridge

    head = BridgeHead.load(cfg.bridge_head or SHIPPED_HEAD)
    head.check_fits(backbone_version, text.version)
    pretrained = PretrainedBridge(head, text.version)
    if cfg.bridge == "pretrained":
        return pretrained
    weight = head.join_weight if cfg.bridge_join_weight is None else cfg.bridge_join_weight
    return JoinedBridge(pretrained, labels(), weight)
