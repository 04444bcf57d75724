"""Fusion of ranked route results: RRF, convex (min-max / z-score) and dynamic margin. Pure.

Each route gives {doc_id: score} over its (over-fetched) top hits; fusion is exact over the union:
a document a route did not return gets that route's floor (0 after normalisation, no RRF term).

Dynamic margin (the default): a route that separates its top hit clearly from the rest gets more
say for this query. Decisiveness d_r = (s_1 - s_2) / (s_1 - s_n) (the top gap as a share of the
route's score range over its top n): scale-free, so BM25 and cosine are comparable. Weights are
w_r = (eps + d_r) / sum(eps + d), then a convex combination of min-max normalised scores.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

RouteScores = Mapping[str, float]  # doc id -> score, any order


def _normalize(scores: RouteScores, method: str) -> dict[str, float]:
    if not scores:
        return {}
    vals = np.fromiter(scores.values(), dtype=np.float64)
    if method == "zscore":
        std = vals.std()
        z = (vals - vals.mean()) / std if std > 0 else np.zeros_like(vals)
        return dict(zip(scores, z.tolist(), strict=True))
    lo, hi = vals.min(), vals.max()
    norm = (vals - lo) / (hi - lo) if hi > lo else np.ones_like(vals)
    return dict(zip(scores, norm.tolist(), strict=True))


def rrf(routes: Mapping[str, RouteScores], k: int = 60) -> dict[str, float]:
    out: dict[str, float] = {}
    for scores in routes.values():
        ranked = sorted(scores, key=lambda d: -scores[d])
        for rank, doc in enumerate(ranked, 1):
            out[doc] = out.get(doc, 0.0) + 1.0 / (k + rank)
    return out


def convex(routes: Mapping[str, RouteScores], weights: Mapping[str, float] | None = None,
           method: str = "minmax") -> dict[str, float]:
    weights = weights or {r: 1.0 / len(routes) for r in routes}
    normed = {r: _normalize(s, method) for r, s in routes.items()}
    floor = {r: (min(n.values()) if n and method == "zscore" else 0.0) for r, n in normed.items()}
    docs = set().union(*normed.values()) if normed else set()
    return {d: sum(weights.get(r, 0.0) * normed[r].get(d, floor[r]) for r in normed) for d in docs}


def decisiveness(scores: RouteScores, top_n: int = 10) -> float:
    vals = sorted(scores.values(), reverse=True)[:top_n]
    if len(vals) < 2 or vals[0] == vals[-1]:
        return 0.0
    return float((vals[0] - vals[1]) / (vals[0] - vals[-1]))


def dynamic_margin_weights(routes: Mapping[str, RouteScores], eps: float = 0.1,
                           prior: Mapping[str, float] | None = None) -> dict[str, float]:
    raw = {r: (prior or {}).get(r, 1.0) * (eps + decisiveness(s)) for r, s in routes.items() if s}
    total = sum(raw.values())
    return {r: w / total for r, w in raw.items()} if total > 0 else {}


def dynamic_margin(routes: Mapping[str, RouteScores], prior: Mapping[str, float] | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """(fused scores, the per-query route weights used)."""
    weights = dynamic_margin_weights(routes, prior=prior)
    return convex(routes, weights, "minmax"), weights


def fuse(method: str, routes: Mapping[str, RouteScores], weights: Mapping[str, float] | None = None,
         normalization: str = "minmax") -> tuple[dict[str, float], dict[str, float]]:
    routes = {r: s for r, s in routes.items() if s}
    if not routes:
        return {}, {}
    if method == "rrf":
        return rrf(routes), {r: 1.0 for r in routes}
    if method == "convex":
        w = dict(weights) if weights else {r: 1.0 / len(routes) for r in routes}
        return convex(routes, w, normalization), w
    if method == "dynamic_margin":
        return dynamic_margin(routes, weights)
    raise ValueError(f"unknown fusion {method!r}")
