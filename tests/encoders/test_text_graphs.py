"""`bench text-graphs` on the CI Tux Paint set: the float graph ranks exactly like torch, a
quantised one is judged by its ranking, smoothing with mixed precision stays closer to torch than
plain int8, and the test split only reports what validation chose."""

from __future__ import annotations

import pytest

from vidsearch.core.settings import Settings
from vidsearch.ops.bench.text_graphs import ROUTES, run

pytestmark = [pytest.mark.models, pytest.mark.slow]


def test_float_graph_ranks_like_torch_and_test_reports_only_the_validation_choice(tuxpaint_ci, settings: Settings) -> None:
    ds, _ = tuxpaint_ci
    report = run(settings, ds.root, graphs=("fp32", "int8_dynamic", "int8_smooth_mixed"))
    val, test = report["splits"]["val"], report["splits"]["test"]
    assert val["fp32"]["passes"] and val["fp32"]["cosine_min"] > 0.999
    assert all(val["fp32"][r]["top10_overlap"] >= 0.99 and abs(val["fp32"][r]["rsum_delta"]) <= 0.5 for r in ROUTES)
    q8 = val["int8_dynamic"]
    assert q8["cosine_min"] < 0.9999 and 0 < q8["cosine_mean"] <= 1  # quantised: close, not equal
    smooth = val["int8_smooth_mixed"]
    assert smooth["cosine_mean"] > q8["cosine_mean"] and smooth["cosine_min"] > q8["cosine_min"]
    assert min(smooth[r]["top10_overlap"] for r in ROUTES) > min(q8[r]["top10_overlap"] for r in ROUTES)
    assert report["chosen_on_val"] in ("fp32", "int8_dynamic", "int8_smooth_mixed")
    assert set(test) == {"torch", "fp32", report["chosen_on_val"]}
    assert report["speed"]["torch"]["texts_per_s"] > 0 and report["speed"]["int8_dynamic"]["speedup"] > 0
