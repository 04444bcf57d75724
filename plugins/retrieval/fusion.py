"""Fusion of ranked route results: RRF, convex (min-max / z-score) and dynamic margin. Pure.

Each route gives {doc_id: score} over its (over-fetched) top hits; fusion is exact over the union:
a document a route did not return gets that route's floor (0 after normalisation, no RRF term).

Dynamic margin (the default): each route's weight comes from a small learned gate over what fusion
can see at query time (plugins/retrieval/adaptive.py): the routes' decisiveness and top gaps (the
dynamic margin), their score distributions and agreement, the query's length and lexical matches,
and how much text each candidate carries. Without a model (or for a route set it was not trained
on) it falls back to decisiveness weights d_r = (s_1 - s_2) / (s_1 - s_n), w_r = (eps + d_r) /
sum(eps + d). `opensearch_hybrid` reproduces neural-search's min-max + arithmetic-mean pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidsearch.plugins.retrieval.adaptive import AdaptiveFusion, decisiveness, decisiveness_weights

__all__ = ["convex", "decisiveness", "decisiveness_weights", "dynamic_margin", "fuse", "rrf", "FusionContext"]

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


@dataclass(frozen=True)
class FusionContext:
    """What the query-adaptive fusion sees beyond the scores: the query, the light documents the
    routes returned (titles, tags, text lengths), the depth asked of each route, and the model."""

    query: str = ""
    docs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    depth: int = 100
    model: AdaptiveFusion | None = None


def dynamic_margin(routes: Mapping[str, RouteScores], context: FusionContext | None = None,
                   prior: Mapping[str, float] | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """(fused scores, the per-query route weights used). The learned gate when the context has a
    model covering these routes; otherwise the untrained decisiveness weights. A `prior` (the
    request's weights) multiplies the gate's weights, so a caller can still lean on one route."""
    ctx = context or FusionContext()
    if ctx.model is not None and ctx.model.covers(list(routes)) and not prior:
        return ctx.model.fuse(routes, ctx.query, ctx.docs, ctx.depth)
    weights = decisiveness_weights(routes)
    if prior:
        weights = {r: w * prior.get(r, 1.0) for r, w in weights.items()}
        total = sum(weights.values())
        weights = {r: w / total for r, w in weights.items()} if total > 0 else weights
    return convex(routes, weights, "minmax"), weights


def fuse(method: str, routes: Mapping[str, RouteScores], weights: Mapping[str, float] | None = None,
         normalization: str = "minmax", context: FusionContext | None = None) -> tuple[dict[str, float], dict[str, float]]:
    if method == "opensearch_hybrid":
        # Before dropping empty routes: the plugin keeps an empty sub-query's weight in the mean.
        from vidsearch.plugins.retrieval.opensearch_hybrid import opensearch_hybrid, pipeline_weights

        if not any(routes.values()):
            return {}, {}
        w = pipeline_weights(list(routes), weights)  # the plugin's default is 1.0 per sub-query
        return opensearch_hybrid(routes, technique="min_max", weights=w), w
    routes = {r: s for r, s in routes.items() if s}
    if not routes:
        return {}, {}
    if method == "rrf":
        return rrf(routes), {r: 1.0 for r in routes}
    if method == "convex":
        w = dict(weights) if weights else {r: 1.0 / len(routes) for r in routes}
        return convex(routes, w, normalization), w
    if method == "dynamic_margin":
        return dynamic_margin(routes, context, weights)
    raise ValueError(f"unknown fusion {method!r}")
