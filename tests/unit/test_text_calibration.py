"""The calibration the smoothed int8 text graph is rebuilt from: stored without pickle, named by
its content, and the shipped one measured on a training split only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidsearch.core.settings import EncoderSettings
from vidsearch.encoders.onnx.serve import TEXT_CALIBRATION, shipped_calibration
from vidsearch.encoders.onnx.smoothing import TextCalibration


def _calibration(peak: float = 3.0) -> TextCalibration:
    return TextCalibration(0.7, {"a": np.array([1.0, peak], np.float32), "b": np.ones(4, np.float32)}, ("m1",), {"split": "train"})


def test_a_calibration_round_trips_and_its_digest_follows_its_content(tmp_path: Path) -> None:
    cal = _calibration()
    cal.save(tmp_path / "c.npz")
    again = TextCalibration.load(tmp_path / "c.npz")
    assert again.digest() == cal.digest() and again.kept == ("m1",) and again.card == {"split": "train"}
    assert all(np.array_equal(again.ranges[k], cal.ranges[k]) for k in cal.ranges)
    assert _calibration(peak=3.5).digest() != cal.digest()
    assert TextCalibration(0.6, cal.ranges, cal.kept).digest() != cal.digest()
    assert TextCalibration(0.7, cal.ranges, ()).digest() != cal.digest()


def test_the_shipped_calibration_was_measured_on_a_train_split() -> None:
    cal = shipped_calibration()
    assert cal.card["split"] == "train" and cal.card["texts"] > 100
    assert cal.kept and all(np.isfinite(r).all() and (r >= 0).all() for r in cal.ranges.values())
    with np.load(TEXT_CALIBRATION, allow_pickle=False) as z:  # plain arrays: loads without pickle
        assert "meta" in z.files


@pytest.mark.parametrize(("given", "graph"), [({}, "fp32"), ({"onnx_text_int8": True}, "int8"), ({"onnx_text_int8": "false"}, "fp32"),
                                             ({"onnx_text_graph": "int8_smooth"}, "int8_smooth"),
                                             ({"onnx_text_int8": True, "onnx_text_graph": "int8_smooth"}, "int8_smooth")])
def test_the_older_int8_switch_still_selects_the_int8_graph(given: dict[str, object], graph: str) -> None:
    assert EncoderSettings(**given).onnx_text_graph == graph
