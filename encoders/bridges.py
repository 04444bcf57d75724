"""Which bridge from pictures to the text space a deployment runs (`encoders.bridge`).

Both kinds answer `from_vision` (at extraction) and `from_record` (re-encoding a stored record
when only the text side changed), so extraction, the feature cache and re-embedding never ask
which one they hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.text import TextEncoder

SHIPPED_HEAD = Path(__file__).parent / "visual_bridge" / "bridge_head.npz"


class Bridge(Protocol):
    version: str

    def from_vision(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray: ...

    def from_record(self, feats: VideoFeatures) -> np.ndarray: ...


def load_bridge(settings: Settings, text: TextEncoder, backbone_version: str) -> Bridge:
    """The configured bridge; a pretrained head for another backbone or text encoder fails here,
    at start-up, with `BridgeHeadError` (a broken deployment, not bad data)."""
    cfg = settings.encoders
    if cfg.bridge == "pretrained":
        from vidsearch.encoders.visual_bridge.head import BridgeHead, PretrainedBridge

        head = BridgeHead.load(cfg.bridge_head or SHIPPED_HEAD)
        head.check_fits(backbone_version, text.version)
        return PretrainedBridge(head, text.version)
    from vidsearch.encoders.vision import TextBridge

    return TextBridge(text, cfg.bridge_top_k, settings.stack.cache_dir / "bridge")
