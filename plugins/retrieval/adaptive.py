"""Query-adaptive fusion: a small learned gate decides, per query and per document, how much each
route counts. Pure numpy at serving time; trained by `vidsearch train-fusion` (ops/modeling).

Why learned: a hand-set decisiveness rule with a fixed per-route prior lost to RRF on our own data,
because when BM25 is decisive depends on things the rule cannot see (did the query's words match
anything at all, how much text the candidate carries). The gate sees only what fusion can see at
query time:

  per route    decisiveness (s1-s2)/(s1-sn) over the top n (the dynamic margin), the relative top
               gap, the mean and spread of its min-max normalised head, whether it returned anything,
               how full its list is (hits / depth)
  per query    overlap of the routes' top-10 lists, query length, the share of query words found in
               the lexical route's top titles and tags
  per document how much text it carries: log lengths of title, description, transcript and OCR
               (stored at ingest as `text_lengths`), and whether they are known

The fused score is s(d) = sum_r w_r(q, d) * n_r(d), n_r the route's min-max normalised score (0 when
the route did not return d), w = softmax_r(b_r + theta_r . x_r(q, d)). A route set the model was not
trained for falls back to the plain decisiveness weights, so a request for other routes still works.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

RouteScores = Mapping[str, float]
HEAD = 10  # the top-n over which per-route statistics are taken
ROUTE_FEATURES = ("decisiveness", "top_gap", "head_mean", "head_std", "present", "fill")
QUERY_FEATURES = ("overlap", "query_len", "terms_matched")
DOC_FEATURES = ("len_title", "len_description", "len_transcript", "len_ocr", "lengths_known")
FEATURES = ROUTE_FEATURES + QUERY_FEATURES + DOC_FEATURES
FORMAT = "vidsearch.adaptive_fusion/1"
FUSION_FILE = "adaptive_fusion.json"  # its name beside a balanced model, and inside this package
DEFAULT_RESOURCE = FUSION_FILE  # ships inside this package (trained on the Tux Paint train split)
_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset("a an and are as at be but by for if in into is it no not of on or such that the their then there "
                  "these they this to was will with".split())


class FusionModelError(ValueError):
    """A fusion model file is unreadable, of another format, or does not match its features."""


def minmax(scores: RouteScores) -> dict[str, float]:
    if not scores:
        return {}
    vals = np.fromiter(scores.values(), dtype=np.float64)
    lo, hi = float(vals.min()), float(vals.max())
    if hi <= lo:
        return dict.fromkeys(scores, 1.0)
    return {d: (float(s) - lo) / (hi - lo) for d, s in scores.items()}


def _head(scores: RouteScores) -> np.ndarray:
    return np.sort(np.fromiter(scores.values(), dtype=np.float64))[::-1][:HEAD]


def decisiveness(scores: RouteScores, top_n: int = HEAD) -> float:
    """(s1 - s2) / (s1 - sn) over the top n: the top gap as a share of the head's range, scale-free
    so that BM25 and cosine scores compare."""
    head = _head(scores)[:top_n]
    span = head[0] - head[-1] if head.size else 0.0
    return float((head[0] - head[1]) / span) if head.size >= 2 and span > 0 else 0.0


def route_features(scores: RouteScores, depth: int) -> np.ndarray:
    """The statistics of one route's result list that say how sure the route is of its head."""
    head = _head(scores)
    if head.size == 0:
        return np.zeros(len(ROUTE_FEATURES))
    span = head[0] - head[-1]
    dec = decisiveness(scores)
    gap = float((head[0] - head[1]) / (abs(head[0]) + 1e-9)) if head.size >= 2 else 0.0
    normed = (head - head[-1]) / span if span > 0 else np.ones_like(head)
    return np.array([dec, min(gap, 1.0), float(normed.mean()), float(normed.std()), 1.0, min(len(scores) / max(depth, 1), 1.0)])


def top_ids(scores: RouteScores, n: int = HEAD) -> list[str]:
    return sorted(scores, key=lambda d: (-scores[d], d))[:n]


def query_features(routes: Mapping[str, RouteScores], query: str, docs: Mapping[str, Mapping[str, Any]],
                   lexical: str = "bm25") -> np.ndarray:
    """Route agreement, query length, and how much of the query the lexical route's head matched
    (titles and tags are what every store returns with a hit; a word found nowhere there is a word
    BM25 most likely matched in a transcript or not at all)."""
    tops = [set(top_ids(s)) for s in routes.values() if s]
    pairs = [(a, b) for i, a in enumerate(tops) for b in tops[i + 1:]]
    overlap = float(np.mean([len(a & b) / HEAD for a, b in pairs])) if pairs else 0.0
    words = [w for w in _WORD.findall(query.lower()) if w not in _STOP]
    head_text: set[str] = set()
    for d in top_ids(routes.get(lexical, {})):
        src = docs.get(d, {})
        head_text.update(_WORD.findall(" ".join([str(src.get("title") or ""), *map(str, src.get("tags") or [])]).lower()))
    matched = sum(w in head_text for w in words) / len(words) if words else 0.0
    return np.array([overlap, math.log1p(len(words)) / 3.0, matched])


def doc_features(lengths: Sequence[int] | None) -> np.ndarray:
    """Log character counts of title, description, transcript, OCR, scaled to about [0, 1.5]."""
    if not lengths or len(lengths) != 4:
        return np.array([0.0, 0.0, 0.0, 0.0, 0.0])
    return np.array([math.log1p(max(int(n), 0)) / 8.0 for n in lengths] + [1.0])


def decisiveness_weights(routes: Mapping[str, RouteScores], eps: float = 0.1) -> dict[str, float]:
    """The untrained dynamic margin: a route's weight grows with how clearly it separates its top hit."""
    raw = {r: eps + decisiveness(s) for r, s in routes.items() if s}
    total = sum(raw.values())
    return {r: w / total for r, w in raw.items()} if total > 0 else {}


@dataclass(frozen=True)
class Candidates:
    """Everything the gate sees for one query: ids, per-route normalised scores and the feature
    tensor x[doc, route, feature]. Built once; used by serving and by training alike."""

    ids: list[str]
    norm: np.ndarray  # (docs, routes)
    x: np.ndarray  # (docs, routes, features)
    routes: tuple[str, ...]


def candidates(routes: Mapping[str, RouteScores], query: str, docs: Mapping[str, Mapping[str, Any]], depth: int,
               order: Sequence[str]) -> Candidates:
    ids = sorted(set().union(*(routes.get(r, {}) for r in order)))
    norm = np.zeros((len(ids), len(order)))
    rf = np.zeros((len(order), len(ROUTE_FEATURES)))
    for j, r in enumerate(order):
        n = minmax(routes.get(r, {}))
        norm[:, j] = [n.get(d, 0.0) for d in ids]
        rf[j] = route_features(routes.get(r, {}), depth)
    qf = query_features(routes, query, docs)
    df = np.stack([doc_features((docs.get(d) or {}).get("text_lengths")) for d in ids]) if ids else np.zeros((0, len(DOC_FEATURES)))
    x = np.zeros((len(ids), len(order), len(FEATURES)))
    x[:, :, :len(ROUTE_FEATURES)] = rf[None]
    x[:, :, len(ROUTE_FEATURES):len(ROUTE_FEATURES) + len(QUERY_FEATURES)] = qf[None, None]
    x[:, :, len(ROUTE_FEATURES) + len(QUERY_FEATURES):] = df[:, None]
    return Candidates(ids, norm, x, tuple(order))


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


@dataclass
class AdaptiveFusion:
    """Per-route gate parameters: bias[r] + coef[r] . x. A few dozen numbers; stored as JSON."""

    routes: tuple[str, ...]
    coef: np.ndarray  # (routes, features)
    bias: np.ndarray  # (routes,)
    version: str = ""
    card: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.coef = np.asarray(self.coef, dtype=np.float64)
        self.bias = np.asarray(self.bias, dtype=np.float64)
        if self.coef.shape != (len(self.routes), len(FEATURES)) or self.bias.shape != (len(self.routes),):
            raise FusionModelError(f"fusion model shapes {self.coef.shape}/{self.bias.shape} do not match "
                                   f"{len(self.routes)} routes x {len(FEATURES)} features")
        if not (np.isfinite(self.coef).all() and np.isfinite(self.bias).all()):
            raise FusionModelError("fusion model has non-finite parameters")
        if not self.version:
            self.version = "adaptive-" + hashlib.sha256(self.to_json(with_version=False).encode()).hexdigest()[:12]

    def covers(self, routes: Sequence[str]) -> bool:
        return set(routes) <= set(self.routes) and len(routes) >= 1

    def gate(self, c: Candidates) -> np.ndarray:
        """(docs, routes) weights; a route the request did not ask for is masked out."""
        idx = [self.routes.index(r) for r in c.routes]
        logits = np.einsum("drf,rf->dr", c.x, self.coef[idx]) + self.bias[idx][None]
        return softmax(logits, axis=1) if len(c.ids) else np.zeros((0, len(idx)))

    def fuse(self, routes: Mapping[str, RouteScores], query: str, docs: Mapping[str, Mapping[str, Any]],
             depth: int) -> tuple[dict[str, float], dict[str, float]]:
        """(fused scores, the mean weight of each route over the candidates, for the response)."""
        order = [r for r in self.routes if routes.get(r)]
        if not order:
            return {}, {}
        c = candidates(routes, query, docs, depth, order)
        w = self.gate(c)
        fused = (w * c.norm).sum(axis=1)
        return dict(zip(c.ids, fused.tolist(), strict=True)), {r: float(w[:, j].mean()) for j, r in enumerate(order)}

    def to_json(self, with_version: bool = True) -> str:
        body: dict[str, Any] = {"format": FORMAT, "routes": list(self.routes), "features": list(FEATURES),
                                "coef": np.round(self.coef, 8).tolist(), "bias": np.round(self.bias, 8).tolist(),
                                "card": self.card}
        if with_version:
            body["version"] = self.version
        return json.dumps(body, indent=1, sort_keys=True)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def from_json(cls, text: str, where: str = "fusion model") -> AdaptiveFusion:
        try:
            body = json.loads(text)
            if body.get("format") != FORMAT:
                raise FusionModelError(f"{where}: format {body.get('format')!r}, expected {FORMAT!r}")
            if tuple(body["features"]) != FEATURES:
                raise FusionModelError(f"{where}: trained on features {body['features']}, this version computes {list(FEATURES)}")
            return cls(tuple(body["routes"]), np.array(body["coef"]), np.array(body["bias"]), body.get("version", ""),
                       body.get("card") or {})
        except FusionModelError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise FusionModelError(f"{where}: unreadable fusion model ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def load(cls, path: Path | None = None) -> AdaptiveFusion:
        """A trained file, or (None) the model that ships with the package."""
        if path is None:
            text = resources.files("vidsearch.plugins.retrieval").joinpath(DEFAULT_RESOURCE).read_text()
            return cls.from_json(text, f"packaged {DEFAULT_RESOURCE}")
        try:
            return cls.from_json(Path(path).read_text(), str(path))
        except OSError as exc:
            raise FusionModelError(f"{path}: cannot read fusion model ({exc})") from exc
