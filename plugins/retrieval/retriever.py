"""The hybrid retriever: encode the query, run each route on its store, fuse exactly, add moments.

Routes and their stores:
  bm25          lexical store (OpenSearch text fields, or Milvus's BM25 function)
  knn           dense store, `vec_fused` (or `vec_ncl` with [q; 1] when NCL is on)
  knn_<m>       dense store, the per-modality vector field `vec_<m>`
A route whose store is unavailable is re-tried on the other store when there is one; either way
the response says `degraded` and why. Only when no route can be served is it an error (503).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel

from vidsearch.core.store import SearchStore
from vidsearch.plugins.retrieval.adaptive import AdaptiveFusion
from vidsearch.plugins.retrieval.cut import autocut
from vidsearch.plugins.retrieval.errors import AllRoutesFailedError, store_unavailable_errors
from vidsearch.plugins.retrieval.fusion import FusionContext, fuse
from vidsearch.plugins.retrieval.moments import Moment, top_moments
from vidsearch.plugins.retrieval.request import SearchRequest

log = logging.getLogger(__name__)
_V = TypeVar("_V")
_RouteRun = tuple[str, dict[str, float], str | None, float, list[str]]  # (route, scores, store or None, ms, warnings)  # what a store call maps each video id to (a score, a document)
TEXT_SPACE_FIELDS = {"knn_speech", "knn_ocr"}  # stored as raw text-encoder vectors in every model


class QueryEncoder(Protocol):
    version: str

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(raw text-encoder vector, query-tower vector in the fused space)."""

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...


class RouteExplain(BaseModel):
    rank: int | None
    score: float | None
    store: str


class Hit(BaseModel):
    video_id: str
    rank: int
    score: float
    title: str | None = None
    duration: float | None = None
    language: str | None = None
    tags: list[str] = []
    media_uri: str | None = None
    model_version: str | None = None  # the model version whose vectors ranked this hit
    moment: Moment | None = None  # the best moment
    moments: list[Moment] = []  # up to `moments_per_video`, best first (the first is `moment`)
    thumbnail_t: float | None = None
    explain: dict[str, RouteExplain] | None = None


class SearchResponse(BaseModel):
    query: str
    page: int
    k: int
    candidates: int
    fusion: str
    fusion_version: str | None = None  # the learned gate's version when dynamic_margin used it
    weights: dict[str, float]
    ncl: bool
    degraded: bool
    warnings: list[str]
    model_version: str
    took_ms: float
    route_ms: dict[str, float]
    hits: list[Hit]


@dataclass
class Gathered:
    raw: np.ndarray  # the raw text-encoder query vector (moments score in that space)
    routes: dict[str, dict[str, float]]  # route -> {video id: score}
    served_by: dict[str, str]  # route -> store name
    docs: dict[str, dict[str, Any]]  # video id -> light fields the routes returned
    depth: int
    warnings: list[str]
    route_ms: dict[str, float]


@dataclass
class Retriever:
    encoder: QueryEncoder
    stores: dict[str, SearchStore]  # "lexical" and "dense" roles -> store; may be the same store
    fallbacks: dict[str, SearchStore] = field(default_factory=dict)  # role -> the other store
    overfetch: int = 5
    min_candidates: int = 50
    on_query: Callable[[np.ndarray], None] | None = None  # the query log feeding NCL biases
    fusion_model: AdaptiveFusion | None = None  # the learned gate of `dynamic_margin`
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8, thread_name_prefix="route"))

    def _run(self, role: str, name: str, call: Callable[[SearchStore], dict[str, _V]],
             warnings: list[str]) -> tuple[dict[str, _V], str | None]:
        errors = store_unavailable_errors()
        tried = [self.stores[role]] + ([self.fallbacks[role]] if role in self.fallbacks else [])
        for store in tried:
            try:
                return call(store), store.name
            except errors as exc:
                msg = f"{name}: {store.name} unavailable ({type(exc).__name__}: {str(exc)[:160]})"
                log.warning("route degraded: %s", msg)
                warnings.append(msg)
        return {}, None

    def search(self, req: SearchRequest) -> SearchResponse:
        t0 = time.perf_counter()
        g = self.gather(req)
        raw, routes, served_by, docs, depth, warnings = g.raw, g.routes, g.served_by, g.docs, g.depth, g.warnings
        context = FusionContext(req.q, docs, depth, self.fusion_model)
        fused, weights = fuse(req.fusion, routes, req.weights, req.normalization, context)
        ranked = sorted(fused, key=lambda d: (-fused[d], d))
        if req.min_score is not None:
            ranked = [d for d in ranked if fused[d] >= req.min_score]
        if req.autocut is not None:
            ranked = ranked[:autocut([fused[d] for d in ranked], req.autocut)]
        start = (req.page - 1) * req.k
        page_ids = ranked[start:start + req.k]
        if req.moments:  # keyframes, segments and media live only in the full document
            for vid, src in (self.fetch(page_ids, warnings) if page_ids else {}).items():
                docs.setdefault(vid, {}).update(src)
        ranks = {r: {d: i + 1 for i, d in enumerate(sorted(s, key=lambda d: -s[d]))} for r, s in routes.items()}
        hits: list[Hit] = []
        for i, vid in enumerate(page_ids):
            src = docs.get(vid, {})
            moments = top_moments(raw, src.get("keyframes") or [], src.get("segments") or [], src.get("duration"),
                                  self.encoder.embed_texts, req.moments_per_video) if req.moments else []
            moment = moments[0] if moments else None
            hit = Hit(
                video_id=vid, rank=start + i + 1, score=round(fused[vid], 6), title=src.get("title"),
                duration=src.get("duration"), language=src.get("language"), tags=src.get("tags") or [],
                media_uri=src.get("media_uri"), model_version=src.get("model_version"), moment=moment,
                moments=moments, thumbnail_t=(moment.evidence.get("t", moment.start) if moment else None),
                explain={r: RouteExplain(rank=ranks[r].get(vid), score=routes[r].get(vid), store=served_by[r])
                         for r in routes} if req.explain else None,
            )
            if req.group_by == "moment" and len(moments) > 1:
                # One hit per moment: a video's moments stay together, in the video's rank order.
                hits.extend(hit.model_copy(update={"moment": m, "moments": [m],
                                                   "thumbnail_t": m.evidence.get("t", m.start)}) for m in moments)
            else:
                hits.append(hit)
        used_model = (req.fusion == "dynamic_margin" and self.fusion_model is not None and not req.weights
                      and self.fusion_model.covers(list(routes)))
        return SearchResponse(
            query=req.q, page=req.page, k=req.k, candidates=len(fused), fusion=req.fusion,
            fusion_version=self.fusion_model.version if used_model and self.fusion_model else None,
            weights={r: round(w, 4) for r, w in weights.items()}, ncl=req.ncl, degraded=bool(warnings),
            warnings=warnings, model_version=self.encoder.version,
            took_ms=round((time.perf_counter() - t0) * 1000, 2), route_ms=g.route_ms, hits=hits)

    def gather(self, req: SearchRequest) -> Gathered:
        """Every route's result list and the light documents they returned, before fusion: what
        the search fuses, and what training the fusion gate learns from."""
        t0 = time.perf_counter()
        raw, tower = self.encoder.encode(req.q)
        if self.on_query is not None:
            self.on_query(tower)
        depth = max(self.min_candidates, self.overfetch * req.page * req.k)
        warnings: list[str] = []
        routes: dict[str, dict[str, float]] = {}
        served_by: dict[str, str] = {}
        route_ms: dict[str, float] = {}

        def target(name: str) -> tuple[str, str, np.ndarray | None]:
            """(role, field, vector) of a route; bm25 has no field or vector."""
            if name == "bm25":
                return "lexical", "", None
            if name == "knn":
                return ("dense", "vec_ncl", np.append(tower, 1.0)) if req.ncl else ("dense", "vec_fused", tower)
            return "dense", f"vec_{name[4:]}", raw if name in TEXT_SPACE_FIELDS else tower

        def one(name: str) -> _RouteRun:
            r0 = time.perf_counter()
            notes: list[str] = []
            role, fld, vec = target(name)
            if vec is None:
                res, store = self._run(role, name, lambda s: s.bm25(req.q, req.filters, depth), notes)
            else:
                res, store = self._run(role, name, lambda s: s.knn(fld, vec, req.filters, depth), notes)
            return name, res, store, round((time.perf_counter() - r0) * 1000, 2), notes

        batched = self._batched(req, depth, target)
        if batched is not None:
            elapsed = round((time.perf_counter() - t0) * 1000, 2)
            results: list[_RouteRun] = [(name, res, self.stores["dense"].name, elapsed, []) for name, res in batched.items()]
        else:
            # Routes on different stores (or a failed batch) run concurrently: the fused latency
            # is the slowest route plus fusion, not their sum.
            results = list(self._pool.map(one, req.routes))
        for name, res, store, ms, notes in results:
            route_ms[name] = ms
            warnings.extend(notes)
            if store is not None:
                routes[name], served_by[name] = res, store
        if not served_by:
            raise AllRoutesFailedError("no route could be served: " + "; ".join(warnings))
        docs: dict[str, dict[str, Any]] = {}
        for res in routes.values():
            for vid, src in getattr(res, "docs", {}).items():
                docs.setdefault(vid, {}).update({k: v for k, v in src.items() if v is not None})
        return Gathered(raw, routes, served_by, docs, depth, warnings, route_ms)

    def _batched(self, req: SearchRequest, depth: int,
                 target: Callable[[str], tuple[str, str, np.ndarray | None]]) -> dict[str, dict[str, float]] | None:
        """All routes in one round trip when one store serves them all and can batch (OpenSearch
        `_msearch`, as the optional `many` method); None means "use the per-route path" (which also handles fallbacks)."""
        store = self.stores["dense"]
        many = getattr(store, "many", None)
        if many is None or self.stores["lexical"] is not store or len(req.routes) < 2:
            return None
        queries: list[tuple[Any, ...]] = []
        for name in req.routes:
            _, fld, vec = target(name)
            queries.append(("bm25", req.q) if vec is None else ("knn", fld, vec))
        try:
            return dict(zip(req.routes, many(queries, req.filters, depth), strict=True))
        except store_unavailable_errors() as exc:
            log.info("batched search failed, per route from here: %s", exc)
            return None

    def fetch(self, ids: list[str], warnings: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Stored documents by id, from the dense store (or its fallback); {} when both are down."""
        res, _ = self._run("dense", "fetch", lambda s: s.fetch(ids), warnings if warnings is not None else [])
        return res
