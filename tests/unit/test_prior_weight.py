"""The pull toward the default fusion (encoders/balanced/prior.py) and the rule that picks its
weight (ops/modeling/prior_weight.py): pure functions on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest

from vidsearch.encoders.balanced.inputs import video_arrays
from vidsearch.encoders.balanced.prior import default_fused, toward_prior
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.fusion.default import fuse, modality_vectors
from vidsearch.ops.modeling.prior_weight import derived_version, pick


def _video(rng: np.random.Generator, vid: str, text: bool, speech: bool, ocr: bool, frames: int) -> VideoFeatures:
    vec = lambda on: rng.standard_normal(384).astype(np.float32) if on else np.zeros(384, np.float32)  # noqa: E731
    return VideoFeatures(video_id=vid, text_metadata=vec(text), text_transcript=vec(speech), text_ocr=vec(ocr),
                         frame_features=rng.standard_normal((frames, 1280)).astype(np.float32),
                         frame_bridge=rng.standard_normal((frames, 384)).astype(np.float32))


def test_default_fused_from_the_towers_inputs_is_the_documented_default_fusion() -> None:
    rng = np.random.default_rng(0)
    videos = [_video(rng, "all", True, True, True, 3), _video(rng, "poor", False, False, False, 2),
              _video(rng, "text", True, False, True, 0), _video(rng, "none", False, False, False, 0)]
    expected = np.stack([fuse(modality_vectors(v)) for v in videos])
    got = default_fused(video_arrays(videos))
    assert got.shape == (4, 384)
    assert np.allclose(got, expected, atol=1e-5)
    assert not got[3].any()  # nothing to fuse: a zero row, as the default gives


def test_toward_prior_interpolates_and_keeps_unit_length() -> None:
    rng = np.random.default_rng(1)
    model = rng.standard_normal((3, 8)).astype(np.float32)
    model /= np.linalg.norm(model, axis=1, keepdims=True)
    prior = rng.standard_normal((3, 8)).astype(np.float32)
    prior /= np.linalg.norm(prior, axis=1, keepdims=True)
    prior[2] = 0.0
    assert toward_prior(model, prior, 0.0) is model
    full = toward_prior(model, prior, 1.0)
    assert np.allclose(full[:2], prior[:2], atol=1e-6)
    assert np.allclose(full[2], model[2], atol=1e-6)  # no prior for that row: the model's vector
    half = toward_prior(model, prior, 0.5)
    assert np.allclose(np.linalg.norm(half, axis=1), 1.0, atol=1e-5)
    # halfway: equally close to both ends
    assert np.allclose((half[:2] * model[:2]).sum(1), (half[:2] * prior[:2]).sum(1), atol=1e-5)
    with pytest.raises(ValueError):
        toward_prior(model, prior, 1.5)


def _row(w: float, own: tuple[float, float, float], ood: tuple[float, float, float]) -> dict:
    keys = ("all", "text_rich", "text_poor")
    return {"weight": w, "in_domain": dict(zip(keys, own, strict=True)), "ood": dict(zip(keys, ood, strict=True))}


def test_pick_takes_the_smallest_weight_no_worse_than_naive_on_both_splits() -> None:
    rows = [_row(0.75, (20, 6, 30), (14, 6, 21)), _row(0.0, (30, -2, 60), (-1, -7, 4)),
            _row(0.5, (25, 2, 50), (13, 2, 23)), _row(0.25, (31, -10, 63), (10, 2, 18))]
    assert pick(rows) == 0.5  # 0 and 0.25 lose on some subset; 0.5 is the least pull that does not
    # none qualifies: the weight whose worst margin is largest (ties: the smaller weight)
    assert pick([_row(0.0, (5, -4, 5), (1, 1, 1)), _row(0.5, (5, -1, 5), (1, -1, 1)), _row(1.0, (5, -1, 5), (1, 1, 1))]) == 0.5


def test_derived_versions_name_their_weight() -> None:
    assert derived_version("mbvr-balanced-abc", 0.25) == "mbvr-balanced-abc-prior025"
    assert derived_version("mbvr-balanced-abc", 1.0) == "mbvr-balanced-abc-prior100"
