"""Retrieval metrics (percent): R@1, R@5, R@10, median rank and R@sum, per subset.

A query's rank is 1 + the number of non-relevant videos scoring at least as high as its best
relevant target. Ties count against the query (a model of all-zero vectors scores 0, not 100).
Other relevant videos outside the subset are ignored rather than counted as misses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def query_ranks(scores: np.ndarray, relevant: Sequence[Sequence[int]],
                targets: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Rank per query (queries without a target in `targets` are left out)."""
    targets = relevant if targets is None else targets
    out = []
    for i, (rel, tgt) in enumerate(zip(relevant, targets, strict=True)):
        if not tgt:
            continue
        row = scores[i]
        best = row[list(tgt)].max()
        negatives = np.ones(len(row), dtype=bool)
        negatives[list(rel)] = False
        out.append(1 + int(np.count_nonzero(row[negatives] >= best)))
    return np.asarray(out, dtype=np.int64)


def summarize(ranks: np.ndarray) -> dict[str, float]:
    if len(ranks) == 0:
        return {"r1": 0.0, "r5": 0.0, "r10": 0.0, "mdr": float("nan"), "rsum": 0.0, "queries": 0}
    r = {f"r{k}": round(100.0 * float(np.mean(ranks <= k)), 2) for k in (1, 5, 10)}
    return {**r, "mdr": float(np.median(ranks)), "rsum": round(r["r1"] + r["r5"] + r["r10"], 2), "queries": int(len(ranks))}


def subset_metrics(scores: np.ndarray, relevant: Sequence[Sequence[int]], video_subsets: Sequence[str],
                   subsets: Sequence[str] = ("text_rich", "text_poor")) -> dict[str, dict[str, float]]:
    """{"all": ..., subset: ...}: for a subset, each query's targets are its relevant videos in it."""
    out = {"all": summarize(query_ranks(scores, relevant))}
    for name in subsets:
        targets = [[j for j in rel if video_subsets[j] == name] for rel in relevant]
        out[name] = summarize(query_ranks(scores, relevant, targets))
    return out
