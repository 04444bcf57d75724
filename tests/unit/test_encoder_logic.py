"""Pure pieces of the encoders: keyframe choice, OCR de-duplication, the feature record."""

from __future__ import annotations

import numpy as np
import pytest

from vidsearch.encoders.features import FeatureFormatError, VideoFeatures
from vidsearch.encoders.media.keyframes import Candidate, select_keyframes, uniform_indices
from vidsearch.encoders.ocr import OcrLine, dedupe_lines
from vidsearch.encoders.speech import Segment

pytestmark = pytest.mark.unit


def _clip(levels: list[float]) -> list[Candidate]:
    """One candidate per 0.5 s whose thumbnail is a flat grey of the given level."""
    return [Candidate(t=i * 0.5, rgb=np.zeros((2, 2, 3), np.uint8), thumb=np.full((32, 32), lv)) for i, lv in enumerate(levels)]


def test_cuts_become_keyframes() -> None:
    levels = [0.1] * 5 + [0.8] * 5 + [0.3] * 5 + [0.6] * 5
    frames = select_keyframes(_clip(levels), k_min=3, k_max=8, floor=0.06)
    assert [k.t for k in frames] == [0.0, 2.5, 5.0, 7.5]
    assert all(k.reason == "scene" for k in frames)


def test_static_clip_gets_uniform_keyframes() -> None:
    frames = select_keyframes(_clip([0.5] * 21), k_min=3, k_max=8, floor=0.06)
    assert [k.t for k in frames] == [0.0, 5.0, 10.0]
    assert [k.reason for k in frames] == ["scene", "uniform", "uniform"]


def test_too_many_cuts_keep_the_strongest() -> None:
    levels = [0.0, 0.9, 0.0, 0.2, 0.0, 0.9, 0.0]  # big, big, small, small, big, big cuts
    frames = select_keyframes(_clip(levels), k_min=1, k_max=3, floor=0.06, relative=0.0)
    assert len(frames) == 3
    assert [k.t for k in frames] == [0.0, 0.5, 1.0]


def test_adaptive_threshold_ignores_steady_motion() -> None:
    levels = [i * 0.05 for i in range(10)] + [0.95]  # steady drift, then one real cut
    frames = select_keyframes(_clip(levels), k_min=1, k_max=8, floor=0.01)
    assert [k.t for k in frames if k.reason == "scene"] == [0.0, 5.0]


def test_uniform_indices() -> None:
    assert uniform_indices(10, 3) == [0, 4, 9] or uniform_indices(10, 3) == [0, 5, 9]
    assert uniform_indices(2, 5) == [0, 1]


def test_ocr_lines_are_deduplicated_across_frames() -> None:
    lines = [
        OcrLine("BREAKING NEWS", 4.0, 0.8),
        OcrLine("Breaking  news!", 2.0, 0.95),
        OcrLine("Score 2-1", 3.0, 0.9),
        OcrLine("...", 1.0, 0.9),
    ]
    out = dedupe_lines(lines)
    assert [(o.text, o.t) for o in out] == [("Breaking  news!", 2.0), ("Score 2-1", 3.0)]


def _record() -> VideoFeatures:
    rng = np.random.default_rng(0)
    return VideoFeatures(
        video_id="v1",
        title="Übertitel 🎬",
        tags=["a", "b"],
        transcript=[Segment(0.0, 1.5, "hello there")],
        ocr=[OcrLine("EXIT", 0.5, 0.97)],
        keyframe_times=np.array([0.0, 1.25], np.float32),
        frame_features=rng.standard_normal((2, 1280)).astype(np.float32),
        frame_bridge=rng.standard_normal((2, 384)).astype(np.float32),
        frame_top_classes=rng.integers(0, 1000, (2, 5)).astype(np.int16),
        frame_top_probs=rng.random((2, 5)).astype(np.float32),
        audio_vector=rng.standard_normal(384).astype(np.float32),
        encoder_versions={"text": "minilm@x"},
    )


def test_feature_record_roundtrip_is_lossless() -> None:
    rec = _record()
    back = VideoFeatures.from_bytes(rec.to_bytes())
    assert back.title == rec.title and back.transcript == rec.transcript and back.ocr == rec.ocr
    assert back.encoder_versions == rec.encoder_versions
    for name in ("frame_features", "frame_bridge", "frame_top_classes", "audio_vector", "keyframe_times"):
        a, b = getattr(rec, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name


def test_feature_record_rejects_garbage_and_unknown_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FeatureFormatError):
        VideoFeatures.from_bytes(b"definitely not npz")
    good = _record().to_bytes()
    with pytest.raises(FeatureFormatError):  # damaged in transit: zip CRC mismatch
        VideoFeatures.from_bytes(good.replace(b'"format_version": 1', b'"format_version": 9'))
    monkeypatch.setattr("vidsearch.encoders.features.FORMAT_VERSION", 9)
    future = _record().to_bytes()
    monkeypatch.setattr("vidsearch.encoders.features.FORMAT_VERSION", 1)
    with pytest.raises(FeatureFormatError, match="version 9"):
        VideoFeatures.from_bytes(future)
