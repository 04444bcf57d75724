"""The OCR text-presence gate on real keyframes and the real RapidOCR weights: it lets text through,
stops plain frames, and gated, cross-frame-batched reading says what frame-by-frame reading says."""

from __future__ import annotations

import random

import numpy as np
import pytest

from vidsearch.core.settings import Settings
from vidsearch.encoders.media.decode import keyframes
from vidsearch.encoders.ocr import RapidOcrReader, dedupe_lines
from vidsearch.ops.bench.ocr import draw_caption, words

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def gated(settings: Settings) -> RapidOcrReader:
    cfg = settings.encoders
    return RapidOcrReader(cfg.ocr_min_score, cfg.ocr_gate_side, cfg.ocr_gate_box_thresh)


@pytest.fixture(scope="module")
def plain(clip, settings: Settings) -> np.ndarray:
    """A real keyframe with nothing written on it (cyclists on a road)."""
    return keyframes(clip("bikes.mp4"), settings.media)[0].rgb


def _captioned(frame: np.ndarray, caption: str, seed: int) -> np.ndarray:
    return draw_caption(frame, caption, random.Random(seed))


def test_gate_flags_a_drawn_caption_and_passes_a_plain_keyframe(gated: RapidOcrReader, plain: np.ndarray) -> None:
    assert gated.gate_side > 0, "the gate is on by default"
    assert not gated.has_text(plain)
    assert gated.read_frames([(0.0, plain)]) == []
    assert gated.has_text(_captioned(plain, "Yellow submarine", seed=3))
    assert RapidOcrReader(gate_side=0).has_text(plain), "without a gate every frame is read"


def test_gated_batched_reading_matches_frame_by_frame_reading(gated: RapidOcrReader, plain: np.ndarray, clip, settings: Settings) -> None:
    overlay = keyframes(clip("a.mp4"), settings.media)  # gradio's clip: "Thanks for watching" on one keyframe
    frames = [(0.0, _captioned(plain, "Red apple", seed=1)), (1.0, plain), (2.0, _captioned(plain, "Blue whale", seed=2))]
    frames += [(3.0 + k.t, k.rgb) for k in overlay]
    reference = dedupe_lines([line for t, rgb in frames for line in gated.read(rgb, t)])
    got = gated.read_frames(frames)
    # Batching pads short crops to the widest in their batch, which moves confidences a little:
    # a borderline line may drop under the score floor, but nothing new is invented and every
    # confident line is read the same, at the same time.
    confident = {(x.text, x.t) for x in reference if x.score >= 0.9}
    assert confident <= {(x.text, x.t) for x in got} <= {(x.text, x.t) for x in reference}, (got, reference)
    assert {"red", "apple", "blue", "whale"} <= words(" ".join(x.text for x in got)), got
    assert "thanksforwatching" in "".join(x.text for x in got).lower().replace(" ", ""), got


def test_the_gate_is_part_of_the_ocr_version(gated: RapidOcrReader) -> None:
    ungated = RapidOcrReader(gated.min_score, gate_side=0)
    assert ungated.version != gated.version
    assert RapidOcrReader(gated.min_score, gate_side=gated.gate_side, gate_box_thresh=0.2).version != gated.version
