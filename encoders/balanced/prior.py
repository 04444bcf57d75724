"""Pulling a trained balanced model back toward the default fusion it started from.

The towers are residual corrections on top of the documented default fusion (towers.py), learned
from a few hundred in-domain videos. On footage of another kind those corrections transfer
poorly: measured on the out-of-domain emoji set, the trained towers fall behind the untrained
default on text-rich and text-poor videos. Interpolating between a fine-tuned model and the
zero-shot model it started from is the standard remedy (Wortsman et al., "Robust fine-tuning of
zero-shot models", WiSE-FT): most of the in-domain gain stays, most of the robustness returns.

Here the interpolation is in the output space, on both sides of the dot product:

    video' = unit((1 - w) * fused_tower + w * default_fused)
    query' = unit((1 - w) * query_tower + w * unit(query))

Both are in the text encoder's space (the towers start as the default), so the mix is a vector
of the same width: the stores, the ANN indexes and the retrieval code are unchanged. `w` lives in
the model card (a new model version per weight) and is chosen on validation
(ops/modeling/prior_weight.py).
"""

from __future__ import annotations

import numpy as np

from vidsearch.encoders.balanced.inputs import FRAME_DIM, TEXT_DIM, VideoArrays
from vidsearch.encoders.fusion.default import DIM
from vidsearch.encoders.text import normalize_rows


def default_fused(arrays: VideoArrays) -> np.ndarray:
    """(n, 384) the documented default fusion (encoders/fusion/default.py: the unit mean of the
    present ones among metadata, speech and OCR text and the keyframes' mean bridge vector),
    rebuilt from the towers' own inputs so a model needs nothing else to apply its prior."""
    parts = [arrays.text[:, i * DIM:(i + 1) * DIM] for i in range(TEXT_DIM // DIM)]
    parts.append(arrays.vision[:, FRAME_DIM:])
    units = [normalize_rows(p) for p in parts]
    present = [(np.linalg.norm(p, axis=1, keepdims=True) > 0).astype(np.float32) for p in parts]
    total = sum(present)
    mean = sum(u * m for u, m in zip(units, present, strict=True)) / np.maximum(total, 1.0)
    return normalize_rows(mean)


def toward_prior(model: np.ndarray, prior: np.ndarray, weight: float) -> np.ndarray:
    """unit((1 - weight) * model + weight * prior) per row; `weight` 0 returns `model` unchanged.
    A row whose prior is zero (a video with no usable input) keeps the model's vector."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"prior weight must be within [0, 1], got {weight}")
    if weight == 0.0:
        return model
    has_prior = np.linalg.norm(prior, axis=1, keepdims=True) > 0
    mixed = np.where(has_prior, (1.0 - weight) * model + weight * prior, model)
    return normalize_rows(mixed)
