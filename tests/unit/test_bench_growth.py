"""The cost-against-size fit of `bench query`: a power law recovered from hand-made runs."""

from __future__ import annotations

import pytest

from vidsearch.ops.bench.query import growth

pytestmark = pytest.mark.unit


def _run(docs: int, bm25: float, knn: float, index_mb: float) -> dict:
    fused = max(bm25, knn) + 1.0
    return {"docs": docs, "index_mb": index_mb,
            "routes": {name: {"p50_ms": ms} for name, ms in (("bm25", bm25), ("knn", knn), ("fused", fused))}}


def test_growth_recovers_the_exponent_of_each_route_and_names_the_slower_route() -> None:
    sizes = (10_000, 100_000, 300_000)
    # bm25 grows linearly with documents, knn like log-ish sqrt; knn is slower at every size
    runs = [_run(n, 0.001 * n / 10, 2.0 * (n / 10_000) ** 0.5 + 5, 0.9 * n / 1000) for n in sizes]
    g = growth(runs)
    assert g["p50_exponent"]["bm25"] == pytest.approx(1.0, abs=1e-3)
    assert 0.2 < g["p50_exponent"]["knn"] < 0.5
    assert g["fused_waits_on"] == "bm25"  # at 300k bm25 (30 ms) has overtaken knn (~16 ms)
    assert g["index_mb_per_100k_docs"] == pytest.approx(90.0)


def test_growth_of_flat_latency_is_zero_and_one_size_fits_nothing() -> None:
    runs = [_run(n, 3.0, 4.0, 1.0) for n in (1_000, 2_000, 4_000)]
    g = growth(runs)
    assert all(abs(e) < 1e-9 for e in g["p50_exponent"].values())
    assert g["fused_waits_on"] == "knn"
    assert growth(runs[:1]) == {}
