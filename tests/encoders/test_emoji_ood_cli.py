"""`vidsearch dataset emoji`: the out-of-domain set renders from the packaged OpenMoji tarball
into the evaluation format, with no train split, and its videos decode into features."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vidsearch.ops.datasets.features import cache_path
from vidsearch.ops.datasets.format import load_dataset

pytestmark = [pytest.mark.models, pytest.mark.timeout(600)]


def test_the_emoji_set_renders_into_the_evaluation_format(tmp_path: Path) -> None:
    vidsearch = str(Path(sys.executable).parent / "vidsearch")
    out = tmp_path / "emoji"
    res = subprocess.run([vidsearch, "dataset", "emoji", "--out", str(out), "--limit", "6", "--json"],
                         capture_output=True, text=True, timeout=580)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout)
    assert report["videos"] == report["features"] == 6 and report["source"] == "openmoji"
    ds = load_dataset(out)
    assert {v.split for v in ds.videos} <= {"val", "test"}, "the towers never train on this set"
    by_id = {v.video_id: v for v in ds.videos}
    for q in ds.queries:
        for vid in q.relevant:
            v = by_id[vid]
            assert q.text.lower() not in f"{v.title} {v.description}".lower(), (q.text, v)
    assert {v.subset for v in ds.videos} == {"text_rich", "text_poor"}
    assert all(cache_path(ds, v.video_id).exists() for v in ds.videos)
