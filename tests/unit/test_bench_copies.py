"""The copy-search benchmark at a tiny size: it reports every figure it promises, the figures are
sane, and its synthetic catalogue is reproducible batch by batch (the exact baseline relies on
regenerating the very vectors that were inserted)."""

from __future__ import annotations

import numpy as np
import pytest

from vidsearch.core.settings import Settings
from vidsearch.ops.bench.copies import Catalogue, run_copies_bench

pytestmark = pytest.mark.unit


def test_catalogue_batches_are_reproducible_unit_and_structured() -> None:
    cat = Catalogue(videos=40, frames_per_video=4, dim=32, seed=3)
    first = [v.copy() for _, v in cat.batches()]
    again = [v for _, v in cat.batches()]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    vectors = np.concatenate(first)
    assert vectors.shape == (40, 4, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), 1.0, atol=1e-5)
    # frames of one video resemble each other more than frames of different videos
    same = float(np.mean([vectors[v, 0] @ vectors[v, 1] for v in range(40)]))
    other = float(np.mean([vectors[v, 0] @ vectors[(v + 17) % 40, 0] for v in range(40)]))
    assert same > other + 0.3


def test_tiny_run_reports_sane_figures() -> None:
    lines: list[str] = []
    report = run_copies_bench(Settings(), sizes=(200,), frames_per_video=4, queries=6, dim=32,
                              progress=lines.append)
    assert lines, "no progress was reported"
    assert report["dim"] == 32 and report["queries"] == 6
    (run,) = report["runs"]
    assert run["videos"] == 200 and run["rows"] == 800
    assert run["insert_rows_per_s"] > 0 and run["index_s"] >= 0 and run["disk_bytes"] > 0
    for key in ("raw", "baseline_numpy_exact", "write_new_video", "write_replacing_video"):
        p = run[key]
        assert 0 < p["p50_ms"] <= p["p95_ms"] <= p["p99_ms"], key
    # a copy this close to its source is always among the source frame's nearest neighbours
    assert run["raw"]["source_frame_found"] == 1.0
    assert 0.5 <= run["raw"][f"recall_at_{report['k']}"] <= 1.0
    if report["full_available"]:
        assert run["full"]["p50_ms"] > 0 and 0.0 <= run["full"]["hit_at_1"] <= 1.0
    else:
        assert run["full"] is None
