"""The neural-search 3.5 pipeline emulation, pinned to the plugin's formulas with hand-computed numbers.

Every expected value is worked out by hand from the Java source's formulas; where Java rounds to
float the expectation is the float32 of the hand value (F32), so a slip in the order or precision
of the arithmetic fails.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidsearch.plugins.retrieval.fusion import fuse
from vidsearch.plugins.retrieval.opensearch_hybrid import (
    arithmetic_mean,
    combine,
    l2,
    min_max,
    opensearch_hybrid,
    pipeline_weights,
    rrf_normalize,
    rrf_rank,
)

pytestmark = pytest.mark.unit


def F32(x: float) -> float:
    return float(np.float32(x))


MIN = F32(0.001)  # MinMaxScoreNormalizationTechnique.MIN_SCORE as a Java float
ROUTES = {"bm25": {"x": 10.0, "y": 5.0, "z": 0.0}, "knn": {"y": 0.9, "w": 0.5}}
SPREAD = {"a": 10.0, "b": 6.0, "c": 3.0, "d": 2.0}  # min 2, max 10


# --- min-max normalisation -------------------------------------------------------------------

def test_min_max_is_s_minus_min_over_range_and_a_normalised_zero_becomes_0_001() -> None:
    assert min_max({"a": 10.0, "b": 5.0, "c": 0.0}) == {"a": 1.0, "b": 0.5, "c": MIN}
    # (6 - 2) / (10 - 2) in float; the minimum maps to 0.001, not 0
    assert min_max(SPREAD) == {"a": 1.0, "b": 0.5, "c": 0.125, "d": MIN}


def test_all_equal_scores_and_a_single_result_score_1() -> None:
    assert min_max({"a": 3.0, "b": 3.0, "c": 3.0}) == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert min_max({"only": 0.42}) == {"only": 1.0}


def test_all_zero_scores_give_0_001_because_the_running_max_starts_at_float_min_value() -> None:
    # Java: max = Math.max(Float.MIN_VALUE, 0) = 1.4e-45 != min 0, so (0 - 0) / 1.4e-45 = 0 -> 0.001
    assert min_max({"a": 0.0, "b": 0.0}) == {"a": MIN, "b": MIN}
    assert min_max({"a": 0.0, "b": -0.0}) == {"a": MIN, "b": MIN}  # -0.0 read as 0.0: no 0/0


def test_all_negative_scores_use_float_min_value_as_the_max() -> None:
    # max = 1.4e-45, min = -2: (-1 + 2) / (1.4e-45 + 2) = 0.5 in float; -2 -> 0 -> 0.001
    assert min_max({"a": -1.0, "b": -2.0}) == {"a": 0.5, "b": MIN}
    assert min_max({"a": -3.0}) == {"a": MIN}  # a single negative result is not "single": max 1.4e-45 != -3


def test_min_max_arithmetic_is_java_float() -> None:
    out = min_max({"a": 10.0, "b": 6.0, "c": 4.0})  # (6 - 4) / (10 - 4) = 1/3 as a float
    assert out["b"] == float(np.float32(2.0) / np.float32(6.0)) != 1 / 3


# --- lower and upper bounds ------------------------------------------------------------------

def test_lower_bound_apply_uses_the_bound_as_min_only_for_scores_above_it() -> None:
    out = min_max(SPREAD, {"mode": "apply", "min_score": 4.0})
    # a: (10-4)/(10-4); b: (6-4)/(10-4); c = 3 <= 4 keeps min 2: (3-2)/(10-2); d: 0 -> 0.001
    assert out == {"a": 1.0, "b": F32(2 / 6), "c": 0.125, "d": MIN}


def test_lower_bound_clip_sends_scores_below_it_to_0_001() -> None:
    out = min_max(SPREAD, {"mode": "clip", "min_score": 4.0})
    assert out == {"a": 1.0, "b": F32(2 / 6), "c": MIN, "d": MIN}  # c = 3 < 4 is clipped


def test_lower_bound_ignore_is_plain_min_max() -> None:
    assert min_max(SPREAD, {"mode": "ignore", "min_score": 4.0}) == min_max(SPREAD)


def test_lower_bound_defaults_are_mode_apply_and_min_score_0() -> None:
    out = min_max(SPREAD, {})
    # every score > 0 and max > 0: min becomes 0, so s / 10 and the lowest is 0.2, not 0.001
    assert out == {"a": 1.0, "b": F32(0.6), "c": F32(0.3), "d": F32(0.2)}
    assert min_max(SPREAD, {"min_score": 0.0}) == min_max(SPREAD, {"mode": "apply"}) == out


def test_lower_bound_above_the_max_falls_back_to_the_real_min_in_both_modes() -> None:
    for mode in ("apply", "clip"):
        assert min_max(SPREAD, {"mode": mode, "min_score": 20.0}) == min_max(SPREAD)


def test_negative_lower_bound_lifts_the_minimum_above_0_001() -> None:
    # min becomes -2 for both: (1 + 2) / (1 + 2) = 1, (0 + 2) / 3
    assert min_max({"a": 1.0, "b": 0.0}, {"mode": "apply", "min_score": -2.0}) == {"a": 1.0, "b": F32(2 / 3)}


def test_upper_bound_clip_and_apply() -> None:
    scores = {**SPREAD, "e": 9.0}
    clip = min_max(scores, upper_bound={"mode": "clip", "max_score": 8.0})
    # max becomes 8: 9 and 10 are above it -> 1.0; b: (6-2)/(8-2); c: (3-2)/(8-2)
    assert clip == {"a": 1.0, "e": 1.0, "b": F32(4 / 6), "c": F32(1 / 6), "d": MIN}
    apply = min_max(scores, upper_bound={"mode": "apply", "max_score": 8.0})
    # apply only for scores below the bound: e = 9 keeps max 10: (9-2)/(10-2)
    assert apply == {"a": 1.0, "e": 0.875, "b": F32(4 / 6), "c": F32(1 / 6), "d": MIN}


def test_bounds_are_validated_as_the_plugin_does() -> None:
    with pytest.raises(ValueError, match="invalid mode"):
        min_max(SPREAD, {"mode": "floor"})
    with pytest.raises(ValueError, match="between"):
        min_max(SPREAD, {"min_score": 10_001})
    with pytest.raises(ValueError, match="unrecognized"):
        min_max(SPREAD, {"max_score": 1.0})
    with pytest.raises(ValueError, match="min_max only"):
        opensearch_hybrid(ROUTES, technique="rrf", lower_bounds={"bm25": {"mode": "clip"}})
    with pytest.raises(ValueError, match="not sub-queries"):
        opensearch_hybrid(ROUTES, lower_bounds={"knn_ocr": {"mode": "clip"}})


def test_bounds_are_per_route() -> None:
    routes = {"bm25": SPREAD, "knn": {"c": 1.0, "e": 0.5}}
    out = opensearch_hybrid(routes, lower_bounds={"bm25": {"mode": "clip", "min_score": 4.0}})
    # bm25 c = 3 is clipped to 0.001, knn is plain min-max (c = 1.0): (0.001 + 1) / 2
    assert out["c"] == F32(F32(MIN + 1.0) / 2)
    assert out["e"] == F32(MIN / 2)


# --- combination -----------------------------------------------------------------------------

def test_arithmetic_mean_keeps_a_missing_documents_weight_in_the_denominator() -> None:
    out = opensearch_hybrid(ROUTES)
    # bm25: x 1, y 0.5, z 0.001; knn: y 1, w 0.001; default weights 1.0 each
    assert out == {"y": 0.75, "x": 0.5, "w": F32(MIN / 2), "z": F32(MIN / 2)}
    assert list(out) == ["y", "x", "w", "z"]  # score desc, ties to the smaller doc id


def test_weights_multiply_each_sub_query_and_divide_by_their_sum() -> None:
    out = opensearch_hybrid(ROUTES, weights={"bm25": 0.8, "knn": 0.2})
    # y: (0.5 * 0.8 + 1 * 0.2) / (0.8 + 0.2); x is only in bm25: 0.8 * 1 / 1.0
    assert out["y"] == pytest.approx(0.6, abs=1e-7) and out["x"] == F32(0.8)
    assert out["w"] == pytest.approx(0.0002, rel=1e-6)


def test_weights_outside_what_the_plugin_accepts_are_rescaled_to_sum_1() -> None:
    assert pipeline_weights(["bm25", "knn"], {"bm25": 4.0, "knn": 1.0}) == {"bm25": F32(0.8), "knn": F32(0.2)}
    assert pipeline_weights(["bm25", "knn"], {"bm25": 0.5, "knn": 0.5}) == {"bm25": 0.5, "knn": 0.5}
    assert pipeline_weights(["bm25", "knn"], {"knn": 1.0}) == {"bm25": 0.0, "knn": 1.0}  # unnamed: 0
    assert pipeline_weights(["bm25", "knn"], None) == {"bm25": 1.0, "knn": 1.0}  # plugin default
    a = opensearch_hybrid(ROUTES, weights={"bm25": 4.0, "knn": 1.0})
    b = opensearch_hybrid(ROUTES, weights={"bm25": 0.8, "knn": 0.2})
    assert list(a) == list(b) and a == pytest.approx(b)
    for bad in ({"bm25": -1.0}, {"bm25": 0.0, "knn": 0.0}, {"bm25": math.nan}, {"knn_ocr": 1.0}):
        with pytest.raises(ValueError):
            pipeline_weights(["bm25", "knn"], bad)


def test_an_empty_route_is_still_a_sub_query() -> None:
    out = opensearch_hybrid({"bm25": {"x": 10.0, "y": 5.0}, "knn": {}})
    assert out == {"x": 0.5, "y": F32(MIN / 2)}


def test_geometric_and_harmonic_means_skip_missing_documents() -> None:
    normed = {"bm25": {"x": 1.0, "y": 0.5}, "knn": {"y": 1.0, "w": 0.25}}
    geo = combine(normed, "geometric_mean")
    # x only in bm25: exp(ln 1 / 1); y: exp((ln 0.5 + ln 1) / 2) = sqrt(0.5)
    assert geo["x"] == 1.0 and geo["y"] == F32(math.sqrt(0.5)) and geo["w"] == 0.25
    har = combine(normed, "harmonic_mean")
    # y: (1 + 1) / (1/0.5 + 1/1) = 2/3
    assert har["x"] == 1.0 and har["y"] == F32(2 / 3) and har["w"] == 0.25
    assert arithmetic_mean(normed) == {"x": 0.5, "y": 0.75, "w": 0.125}


def test_l2_divides_by_the_norm() -> None:
    assert l2({"a": 3.0, "b": 4.0}) == {"a": F32(0.6), "b": F32(0.8)}
    assert l2({"a": 0.0, "b": 0.0}) == {"a": 0.0, "b": 0.0}
    out = opensearch_hybrid({"bm25": {"a": 3.0, "b": 4.0}, "knn": {"a": 1.0}}, technique="l2")
    assert out["a"] == F32(F32(0.6 + 1.0) / 2) and out["b"] == F32(0.4)


def test_min_score_drops_documents_below_it() -> None:
    out = opensearch_hybrid(ROUTES, min_score=0.5)
    assert out == {"y": 0.75, "x": 0.5}


# --- rank based (score-ranker-processor) ------------------------------------------------------

R1, R2 = F32(0.0163934426), F32(0.0161290323)  # 1/61 and 1/62 to 10 decimals (BigDecimal HALF_UP), as floats


def test_rrf_ranks_from_1_with_rank_constant_60_and_sums() -> None:
    out = rrf_rank({"a": {"x": 9.0, "y": 5.0}, "b": {"y": 0.9, "z": 0.1}})
    assert out == {"x": R1, "y": float(np.float32(R2) + np.float32(R1)), "z": R2}
    assert out["y"] == pytest.approx(1 / 61 + 1 / 62, abs=5e-9)
    assert opensearch_hybrid({"a": {"x": 9.0, "y": 5.0}, "b": {"y": 0.9, "z": 0.1}}, technique="rrf") == {
        "y": out["y"], "x": R1, "z": R2}


def test_rrf_rank_constant_and_rounding() -> None:
    assert rrf_normalize({"x": 2.0, "y": 1.0}, rank_constant=1) == {"x": 0.5, "y": F32(0.3333333333)}
    assert rrf_normalize({"x": 1.0}, rank_constant=3) == {"x": 0.25}
    for k in (0, 10_001):
        with pytest.raises(ValueError, match="rank constant"):
            rrf_normalize({"x": 1.0}, rank_constant=k)


def test_rrf_weights_are_a_weighted_sum_without_division() -> None:
    out = rrf_rank({"a": {"x": 9.0, "y": 5.0}, "b": {"y": 0.9, "z": 0.1}}, weights={"a": 0.75, "b": 0.25})
    assert out["x"] == F32(R1 * 0.75) and out["z"] == F32(R2 * 0.25)
    assert out["y"] == pytest.approx(R2 * 0.75 + R1 * 0.25, abs=1e-9)


def test_rrf_ties_within_a_sub_query_rank_by_doc_id() -> None:
    out = rrf_normalize({"q": 1.0, "p": 1.0, "r": 2.0})
    assert out == {"r": R1, "p": R2, "q": F32(0.0158730159)}  # 1/63


def test_technique_and_combination_must_pair() -> None:
    with pytest.raises(ValueError, match="pair"):
        opensearch_hybrid(ROUTES, technique="rrf", combination="arithmetic_mean")
    with pytest.raises(ValueError, match="pair"):
        opensearch_hybrid(ROUTES, technique="min_max", combination="rrf")


# --- edges: empty, non-finite, the retriever's entry point ------------------------------------

def test_empty_routes_give_nothing() -> None:
    assert opensearch_hybrid({}) == {} and opensearch_hybrid({"bm25": {}, "knn": {}}) == {}
    assert opensearch_hybrid({"bm25": {}}, technique="rrf") == {} and rrf_rank({}) == {}
    assert min_max({}) == {} and l2({}) == {} and combine({}) == {}


def test_non_finite_scores_are_refused() -> None:
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="finite"):
            opensearch_hybrid({"bm25": {"x": 1.0, "y": bad}})


def test_fuse_dispatches_to_the_emulation() -> None:
    scores, weights = fuse("opensearch_hybrid", ROUTES)
    assert scores == opensearch_hybrid(ROUTES, weights=weights)
    assert scores["y"] == 0.75


score = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False, width=32)
route = st.dictionaries(st.sampled_from([f"d{i}" for i in range(25)]), score, max_size=25)
routes_st = st.dictionaries(st.sampled_from(["bm25", "knn", "knn_text", "knn_ocr"]), route, min_size=1, max_size=4)
bound_st = st.fixed_dictionaries({"mode": st.sampled_from(["apply", "clip", "ignore"]),
                                  "min_score": st.floats(min_value=-100, max_value=100, width=32)})
upper_st = st.fixed_dictionaries({"mode": st.sampled_from(["apply", "clip", "ignore"]),
                                  "max_score": st.floats(min_value=-100, max_value=100, width=32)})


@settings(max_examples=300, deadline=None)
@given(routes=routes_st, data=st.data())
def test_min_max_arithmetic_mean_scores_stay_in_0_1_and_finite(routes: dict[str, dict[str, float]], data: st.DataObject) -> None:
    weights = data.draw(st.none() | st.fixed_dictionaries({r: st.floats(0.0, 1.0) for r in routes}).filter(
        lambda w: any(v > 0 for v in w.values())))
    bounds = data.draw(st.none() | st.fixed_dictionaries({r: bound_st for r in routes}))
    uppers = data.draw(st.none() | st.fixed_dictionaries({r: upper_st for r in routes}))
    out = opensearch_hybrid(routes, weights=weights, lower_bounds=bounds, upper_bounds=uppers)
    assert set(out) == set().union(*routes.values())
    assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in out.values())
    vals = list(out.values())
    assert vals == sorted(vals, reverse=True)
    for r, s in routes.items():
        normed = min_max(s, (bounds or {}).get(r), (uppers or {}).get(r))
        assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in normed.values())
        assert all(v > 0 for v in normed.values())  # never 0: the plugin's 0.001 floor
    ranked = opensearch_hybrid(routes, technique="rrf")
    assert all(math.isfinite(v) and 0.0 < v <= len(routes) / 61 + 1e-7 for v in ranked.values())
