"""OpenSearch neural-search 3.5's hybrid score pipelines, reproduced over the routes' results. Pure.

Why an emulation: the neural-search plugin is not published on Maven Central, so the local stack
cannot install it and OpenSearch's own `hybrid` query cannot run here. Its pipelines only ever see
each sub-query's top hits, so running the same arithmetic over the same hits our routes already
return (one route = one sub-query of a `hybrid` query on one shard) gives the plugin's scores and
order. Where a cluster has the plugin, `vidsearch plugins install` creates the real pipeline.

What it mirrors (neural-search 3.5 Java classes):
- normalization-processor: `MinMaxScoreNormalizationTechnique` with `bounds.LowerBound`,
  `bounds.UpperBound` and `bounds.BoundMode`; `L2ScoreNormalizationTechnique`; then
  `ArithmeticMeanScoreCombinationTechnique`, `GeometricMeanScoreCombinationTechnique` or
  `HarmonicMeanScoreCombinationTechnique`, with weights from `ScoreCombinationUtil`;
- score-ranker-processor (`RRFProcessor`): `RRFNormalizationTechnique` then
  `RRFScoreCombinationTechnique`;
- `ScoreCombiner`: a document a sub-query did not return scores 0.0 there (a plain Java float
  array), results are ordered by combined score, and the optional `min_score` keeps scores >= it.

Java computes in `float`; so does this module (numpy float32, one rounding per Java operation, in
the same order), so scores match bit for bit, not just approximately. Stand-ins, documented:
- Lucene breaks ties by its internal doc id; we have none, so ties within a sub-query (the RRF rank
  order, the L2 summation order) and in the final order go to the smaller doc id string, the
  retriever's own tie rule.
- Weights are given per route name; the plugin takes a positional list matching its sub-queries,
  so they are laid out in the route order of the `routes` mapping (see `pipeline_weights`).
- -0.0 is read as 0.0 (in Java a 0.0/-0.0 pair makes min-max divide 0 by 0); scores must be finite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal

import numpy as np

RouteScores = Mapping[str, float]  # doc id -> score, any order
Technique = Literal["min_max", "l2", "rrf"]
Combination = Literal["arithmetic_mean", "geometric_mean", "harmonic_mean", "rrf"]

F32 = np.float32
MIN_SCORE = F32(0.001)  # a min-max score of exactly 0 becomes this, so the document still counts
MAX_SCORE = F32(1.0)  # where an upper bound in clip mode clips
SINGLE_RESULT_SCORE = F32(1.0)  # min == max: every score is the top score
DEFAULT_RANK_CONSTANT = 60
RANK_CONSTANT_RANGE = (1, 10_000)
BOUND_SCORE_RANGE = (-10_000.0, 10_000.0)
BOUND_MODES = ("apply", "clip", "ignore")
DEFAULT_BOUND = {"lower": F32(0.0), "upper": F32(1.0)}
BOUND_KEY = {"lower": "min_score", "upper": "max_score"}
# Java's Float.MIN_VALUE is the smallest positive float, and the running max starts there: a
# sub-query whose scores are all <= 0 gets that as its max. Kept, so all-zero scores give 0.001.
JAVA_FLOAT_MIN_VALUE = np.nextafter(F32(0.0), F32(1.0))
WEIGHT_SUM_TOLERANCE = float(F32(0.01))  # ScoreCombinationUtil: weights in [0, 1] summing to 1 within this
MEANS = ("arithmetic_mean", "geometric_mean", "harmonic_mean")


def _scores(scores: RouteScores) -> tuple[list[str], np.ndarray]:
    """Doc ids in the sub-query's own order (score desc, then doc id) and their float32 scores."""
    vals = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
    if not np.isfinite(vals).all():
        raise ValueError("route scores must be finite")
    f32 = dict(zip(scores, (vals.astype(F32) + F32(0.0)).tolist(), strict=True))  # + 0.0: -0.0 -> 0.0
    docs = sorted(f32, key=lambda d: (-f32[d], d))  # Lucene ranks the float scores
    return docs, np.array([f32[d] for d in docs], dtype=F32)


def _bound(bound: Mapping[str, Any] | None, side: Literal["lower", "upper"]) -> tuple[str, np.float32] | None:
    """(mode, score) of one bound in the pipeline's JSON shape, validated as the plugin does."""
    if bound is None:
        return None
    key = BOUND_KEY[side]
    stray = set(bound) - {"mode", key}
    if stray:
        raise ValueError(f"unrecognized {side} bound parameters {sorted(stray)}; supported: mode, {key}")
    mode = str(bound.get("mode") or "apply").lower()
    if mode not in BOUND_MODES:
        raise ValueError(f"invalid mode: {bound.get('mode')}, valid values are: {', '.join(BOUND_MODES)}")
    raw = bound.get(key)
    score = DEFAULT_BOUND[side] if raw is None else F32(float(raw))
    if not BOUND_SCORE_RANGE[0] <= score <= BOUND_SCORE_RANGE[1]:
        raise ValueError(f"{key} must be a valid finite number between {BOUND_SCORE_RANGE[0]} and {BOUND_SCORE_RANGE[1]}")
    return mode, score + F32(0.0)


def min_max(scores: RouteScores, lower_bound: Mapping[str, Any] | None = None,
            upper_bound: Mapping[str, Any] | None = None) -> dict[str, float]:
    """One sub-query's min-max scores, (s - min) / (max - min), with the plugin's edge cases.

    Bounds take the pipeline's JSON shape, e.g. {"mode": "clip", "min_score": 0.2} (mode defaults
    to apply, min_score to 0.0, max_score to 1.0); no bound is the same as mode ignore.
    lower apply: the bound replaces min for a score above it (when max is above it too);
    lower clip:  the bound replaces min (unless max is below it), a score below it gets 0.001;
    upper apply/clip mirror those with max, and clip gives 1.0 above the bound.
    """
    docs, s = _scores(scores)
    if not docs:
        return {}
    lo, hi = s.min(), max(JAVA_FLOAT_MIN_VALUE, s.max())
    lb, ub = _bound(lower_bound, "lower"), _bound(upper_bound, "upper")
    eff_min = np.full_like(s, lo)
    if lb is not None and lb[0] == "apply":
        eff_min = np.where((hi > lb[1]) & (s > lb[1]), lb[1], lo).astype(F32)
    elif lb is not None and lb[0] == "clip":
        eff_min[:] = lo if hi < lb[1] else lb[1]
    eff_max = np.full_like(s, hi)
    if ub is not None and ub[0] == "apply":
        eff_max = np.where((lo < ub[1]) & (s < ub[1]), ub[1], hi).astype(F32)
    elif ub is not None and ub[0] == "clip":
        eff_max[:] = hi if lo > ub[1] else ub[1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # such cells are masked below
        norm = ((s - eff_min) / (eff_max - eff_min)).astype(F32)
    norm = np.where(norm == 0, MIN_SCORE, norm)
    norm = np.where(eff_max == eff_min, SINGLE_RESULT_SCORE, norm)  # calculateNormalizedScore
    if ub is not None and ub[0] == "clip":
        norm = np.where(s > eff_max, MAX_SCORE, norm)
    if lb is not None and lb[0] == "clip":
        norm = np.where(s < eff_min, MIN_SCORE, norm)  # checked before the upper clip in Java
    if hi == lo:
        norm[:] = SINGLE_RESULT_SCORE  # isSingleScore: every score equals min == max
    return dict(zip(docs, norm.astype(F32).tolist(), strict=True))


def l2(scores: RouteScores) -> dict[str, float]:
    """One sub-query's scores over their L2 norm: s / sqrt(sum s^2), summed in float in rank order."""
    docs, s = _scores(scores)
    if not docs:
        return {}
    sq_sum = np.add.accumulate(s * s, dtype=F32)[-1]
    norm = F32(np.sqrt(np.float64(sq_sum)))
    out = np.zeros_like(s) if norm == 0 else (s / norm).astype(F32)
    return dict(zip(docs, out.tolist(), strict=True))


@lru_cache(maxsize=65536)
def _reciprocal(n: int) -> float:
    """float(BigDecimal.ONE.divide(n, 10, HALF_UP)): 1/n to 10 decimals, then the nearest float."""
    q = Fraction((2 * 10**10 + n) // (2 * n), 10**10)  # HALF_UP of a positive quotient
    f = F32(float(q))
    for g in (np.nextafter(f, F32(0.0)), np.nextafter(f, F32(1.0))):  # no double-rounding slip
        if abs(Fraction(float(g)) - q) < abs(Fraction(float(f)) - q):
            f = g
    return float(f)


def rrf_normalize(scores: RouteScores, rank_constant: int = DEFAULT_RANK_CONSTANT) -> dict[str, float]:
    """One sub-query's rank scores: 1 / (rank_constant + rank), rank from 1 in score order."""
    if not RANK_CONSTANT_RANGE[0] <= rank_constant <= RANK_CONSTANT_RANGE[1]:
        raise ValueError(f"rank constant must be in the interval between 1 and 10000, submitted rank constant: {rank_constant}")
    docs, _ = _scores(scores)
    return {d: _reciprocal(rank_constant + rank) for rank, d in enumerate(docs, 1)}


def pipeline_weights(route_names: Sequence[str], weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """The positional weight list the pipeline would hold, keyed by route, in route order.

    None is the plugin's default (no `weights` parameter): 1.0 for every sub-query. A mapping is
    laid out in `route_names` order, a route it does not name weighing 0. The plugin accepts only
    weights in [0, 1] that sum to 1 within 0.01; weights that do are used as given, others are
    divided by their sum, which changes no mean and scales every RRF sum alike, so the order is the
    one the equivalent pipeline gives.
    """
    if weights is None:
        return {r: 1.0 for r in route_names}
    stray = sorted(set(weights) - set(route_names))
    if stray:
        raise ValueError(f"weights for routes that are not sub-queries {stray}")
    given = np.array([weights.get(r, 0.0) for r in route_names], dtype=np.float64)
    if not np.isfinite(given).all() or (given < 0).any() or not (given > 0).any():
        raise ValueError("weights must be finite, >= 0 and not all 0")
    w = given.astype(F32)  # List<Double> -> floatValue
    total = np.add.accumulate(w, dtype=F32)[-1]  # Java's float reduce, left to right
    if (w > 1).any() or abs(float(total) - 1.0) > WEIGHT_SUM_TOLERANCE:
        w = (given / given.sum()).astype(F32)
    return dict(zip(route_names, w.tolist(), strict=True))


def combine(normalised: Mapping[str, RouteScores], combination: Combination = "arithmetic_mean",
            weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Per document, the sub-queries' normalised scores combined as the plugin's technique does.

    A sub-query that did not return the document gives 0.0 (ScoreCombiner's zeroed float array):
    arithmetic_mean  sum(w_i * s_i) / sum(w_i) over s_i >= 0, so a missing 0 keeps its weight;
    geometric_mean   exp(sum(w_i * ln s_i) / sum(w_i)) over s_i > 0, so a missing one is skipped;
    harmonic_mean    sum(w_i) / sum(w_i / s_i) over s_i > 0, likewise;
    rrf              sum(w_i * s_i), no division (0 when every weight is 0).
    """
    names = list(normalised)
    w = np.array(list(pipeline_weights(names, weights).values()), dtype=F32)
    docs = sorted(set().union(*normalised.values())) if names else []
    if not docs:
        return {}
    mat = np.zeros((len(docs), len(names)), dtype=F32)
    index = {d: i for i, d in enumerate(docs)}
    for j, r in enumerate(names):
        for d, v in normalised[r].items():
            mat[index[d], j] = v
    acc, sum_w = np.zeros(len(docs), dtype=F32), np.zeros(len(docs), dtype=F32)
    for j in range(len(names)):  # Java's loop over sub-queries, in their order
        s = mat[:, j]
        take = s > 0 if combination in ("geometric_mean", "harmonic_mean") else s >= 0
        if combination == "geometric_mean":
            with np.errstate(divide="ignore"):
                term = np.float64(w[j]) * np.log(s.astype(np.float64))
            acc = np.where(take, (acc.astype(np.float64) + term).astype(F32), acc)
        elif combination == "harmonic_mean":
            with np.errstate(divide="ignore"):
                acc = np.where(take, acc + (w[j] / s).astype(F32), acc).astype(F32)
        else:
            acc = np.where(take, acc + (s * w[j]).astype(F32), acc).astype(F32)
        sum_w = np.where(take, sum_w + w[j], sum_w).astype(F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        if combination == "arithmetic_mean":
            out = np.where(sum_w == 0, F32(0.0), acc / sum_w)
        elif combination == "geometric_mean":
            out = np.where(sum_w == 0, F32(0.0), np.exp((acc / sum_w).astype(np.float64)).astype(F32))
        elif combination == "harmonic_mean":
            out = np.where(acc > 0, sum_w / acc, F32(0.0))
        elif combination == "rrf":
            out = np.where(sum_w == 0, F32(0.0), acc)
        else:
            raise ValueError(f"unknown combination {combination!r}")
    return dict(zip(docs, out.astype(F32).tolist(), strict=True))


def arithmetic_mean(normalised: Mapping[str, RouteScores], weights: Mapping[str, float] | None = None) -> dict[str, float]:
    return combine(normalised, "arithmetic_mean", weights)


def rrf_rank(routes: Mapping[str, RouteScores], rank_constant: int = DEFAULT_RANK_CONSTANT,
             weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """The score-ranker-processor: rank scores per sub-query, then their (weighted) sum."""
    return combine({r: rrf_normalize(s, rank_constant) for r, s in routes.items()}, "rrf", weights)


def ordered(scores: Mapping[str, float]) -> dict[str, float]:
    """Final order: combined score desc, ties to the smaller doc id (Lucene's would go to its doc id)."""
    return {d: scores[d] for d in sorted(scores, key=lambda d: (-scores[d], d))}


def opensearch_hybrid(routes: Mapping[str, RouteScores], technique: Technique = "min_max",
                      combination: Combination | None = None, weights: Mapping[str, float] | None = None,
                      lower_bounds: Mapping[str, Mapping[str, Any]] | None = None,
                      upper_bounds: Mapping[str, Mapping[str, Any]] | None = None,
                      rank_constant: int = DEFAULT_RANK_CONSTANT, min_score: float | None = None) -> dict[str, float]:
    """Fused scores of a `hybrid` query whose sub-queries are `routes` (in mapping order), in order.

    technique min_max or l2 is the normalization-processor (combination defaults to
    arithmetic_mean); rrf is the score-ranker-processor (combination rrf). Bounds, per route in
    the pipeline's JSON shape, apply to min_max only. An empty route stays a sub-query: under
    arithmetic_mean its weight still divides every document's score.
    """
    combination = combination or ("rrf" if technique == "rrf" else "arithmetic_mean")
    if (technique == "rrf") != (combination == "rrf") or technique not in ("min_max", "l2", "rrf"):
        raise ValueError(f"technique {technique!r} does not pair with combination {combination!r}: "
                         f"rrf goes with rrf, min_max and l2 with one of {list(MEANS)}")
    stray = sorted(set(lower_bounds or {}) | set(upper_bounds or {}))
    if stray and technique != "min_max":
        raise ValueError("lower_bounds and upper_bounds apply to min_max only")
    if set(stray) - set(routes):
        raise ValueError(f"bounds for routes that are not sub-queries {sorted(set(stray) - set(routes))}")
    if technique == "rrf":
        normalised = {r: rrf_normalize(s, rank_constant) for r, s in routes.items()}
    elif technique == "l2":
        normalised = {r: l2(s) for r, s in routes.items()}
    else:
        normalised = {r: min_max(s, (lower_bounds or {}).get(r), (upper_bounds or {}).get(r)) for r, s in routes.items()}
    fused = combine(normalised, combination, weights)
    if min_score is not None:
        floor = F32(min_score)
        fused = {d: v for d, v in fused.items() if F32(v) >= floor}
    return ordered(fused)
