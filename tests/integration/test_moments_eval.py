"""The moment benchmark end to end on a tiny set, with no server: compilation videos rendered from
Tux Paint stamps, features extracted by the real encoders (shots at decode time), indexed through
the real writer into an embedded milvus-lite file, searched through the real retriever."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidsearch.core.settings import Settings
from vidsearch.ops.datasets.compilations import build
from vidsearch.ops.datasets.features import dataset_features
from vidsearch.ops.datasets.format import load_dataset
from vidsearch.ops.modeling.moments_eval import evaluate_moments, iou

pytestmark = [pytest.mark.integration, pytest.mark.models]


def test_moment_benchmark_on_two_compilations(tmp_path: Path, settings: Settings) -> None:
    counts = build(tmp_path / "moments", limit=2)
    assert counts["val_videos"] == counts["test_videos"] == 2 and counts["val_queries"] == 8
    ds = load_dataset(tmp_path / "moments")
    videos = [v for v in ds.videos if v.split == "val"]
    feats = dataset_features(ds, settings, videos)

    # the decoder finds the hard cuts: every ground-truth shot has a detected shot that matches it
    for v in videos:
        detected = feats[v.video_id].shots
        assert detected[0][0] == 0.0 and all(a[1] == b[0] for a, b in zip(detected, detected[1:]))
        for truth in v.model_extra["shots"]:
            assert max(iou(tuple(truth), s) for s in detected) >= 0.8, (v.video_id, truth, detected)

    report = evaluate_moments(ds, feats, settings, "val")
    m = report["metrics"]
    assert (report["videos"], report["queries"], m["queries"]) == (2, 8, 8)
    assert m["r10"] == 100.0  # two videos: the right one is always in the top 10
    assert m["r1_iou70"] <= m["r1_iou50"] <= m["r1"] and 0.0 <= m["miou"] <= 100.0
    # every moment shown is a shot, or a run of adjacent shots, of the video it belongs to
    for row in report["per_query"]:
        assert row["moment"] is not None
        bounds = {b for s in feats[row["top"]].shots for b in s}
        assert row["moment"][0] in bounds and row["moment"][1] in bounds, row

    from vidsearch.plugins.milvus import lite

    assert not [s for s in lite.servers() if "vidsearch-moments-" in str(s["file"])]  # the catalogue's server stopped
