"""How `bench text-graphs` judges a text graph against torch: top-10 overlap, R@sum delta and
cosine, each able to fail a graph on its own."""

from __future__ import annotations

import numpy as np
import pytest

from vidsearch.ops.bench.text_graphs import ROUTES, _compare

pytestmark = pytest.mark.unit


def _ranking(top10: list[list[int]], rsum: float, vectors: np.ndarray) -> dict:
    return {"routes": {r: {"top10": np.array(top10), "rsum": rsum} for r in ROUTES}, "vectors": vectors}


def test_compare_counts_top10_overlap_rsum_and_cosine() -> None:
    v = np.eye(4, dtype=np.float32)
    ref = _ranking([list(range(10)), list(range(10, 20))], 100.0, v)
    same = _compare(ref, _ranking([list(range(10)), list(range(10, 20))], 100.0, v))
    assert same["passes"] and same["naive_fusion"]["top10_overlap"] == 1.0 and same["cosine_min"] == 1.0
    # one query keeps 8 of its 10: overlap (1.0 + 0.8) / 2 = 0.9 < 0.95 fails
    moved = _compare(ref, _ranking([list(range(10)), [*range(12, 20), 98, 99]], 100.0, v))
    assert moved["text_only"]["top10_overlap"] == 0.9 and not moved["passes"]
    worse = _compare(ref, _ranking([list(range(10)), list(range(10, 20))], 99.0, v))
    assert worse["naive_fusion"]["rsum_delta"] == -1.0 and not worse["passes"]
    tilted = v.copy()
    tilted[0] = np.array([0.97, 0.243, 0, 0], np.float32)
    assert not _compare(ref, _ranking([list(range(10)), list(range(10, 20))], 100.0, tilted))["passes"]
