"""Small statistics shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def percentiles(values: list[float], qs: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {f"p{q}_ms": 0.0 for q in qs}
    return {f"p{q}_ms": round(float(np.percentile(arr, q)), 3) for q in qs}


def best_seconds(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Best wall time of `repeats` runs after `warmup` runs: the least noisy estimate on a
    shared 2-core machine."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
