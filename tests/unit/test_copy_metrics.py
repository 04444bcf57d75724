"""VCSL segment precision/recall and ranking AP on small hand-computed cases."""

from __future__ import annotations

import pytest

from vidsearch.plugins.copies.metrics import (
    average_precision,
    f1,
    mean_average_precision,
    overall_segment_prf,
    pair_precision_recall,
)

pytestmark = pytest.mark.unit

GT = (0.0, 10.0, 0.0, 10.0)


def test_perfect_prediction() -> None:
    assert pair_precision_recall([(3.0, 9.0, 20.0, 26.0)], [(3.0, 9.0, 20.0, 26.0)]) == (1.0, 1.0)


def test_half_overlap_on_the_query_axis() -> None:
    # Query spans overlap on [5, 10]: half of each box's query span; reference spans agree.
    assert pair_precision_recall([(5.0, 15.0, 0.0, 10.0)], [GT]) == (0.5, 0.5)


def test_axes_multiply() -> None:
    # A prediction inside the truth, half as long on both axes: all precise, a quarter recalled.
    assert pair_precision_recall([(0.0, 5.0, 0.0, 5.0)], [GT]) == (1.0, 0.25)


@pytest.mark.parametrize("pred", [
    (20.0, 30.0, 20.0, 30.0),  # disjoint
    (10.0, 20.0, 0.0, 10.0),  # touching: zero-area intersection
    (0.0, 10.0, 20.0, 30.0),  # right query span, wrong reference span
])
def test_no_positive_area_overlap_earns_nothing(pred: tuple[float, float, float, float]) -> None:
    assert pair_precision_recall([pred], [GT]) == (0.0, 0.0)


def test_union_of_overlapping_predictions_is_not_double_counted() -> None:
    # [0, 6] and [4, 10] cover [0, 10] once on each axis: recall 1, not 1.2 * 1.2.
    assert pair_precision_recall([(0.0, 6.0, 0.0, 6.0), (4.0, 10.0, 4.0, 10.0)], [GT]) == (1.0, 1.0)


def test_one_prediction_over_two_truths() -> None:
    # The prediction's intersections cover 8 of its 10 s on each axis: precision 0.8 * 0.8.
    gt = [(0.0, 4.0, 0.0, 4.0), (6.0, 10.0, 6.0, 10.0)]
    p, r = pair_precision_recall([GT], gt)
    assert p == pytest.approx(0.64)
    assert r == 1.0


def test_empty_cases() -> None:
    assert pair_precision_recall([], [GT]) == (1.0, 0.0)
    assert pair_precision_recall([GT], []) == (0.0, 1.0)
    assert pair_precision_recall([], []) == (1.0, 1.0)


def test_malformed_box_is_refused() -> None:
    with pytest.raises(ValueError):
        pair_precision_recall([(5.0, 1.0, 0.0, 1.0)], [GT])


def test_f1() -> None:
    assert f1(0.5, 1.0) == pytest.approx(2 / 3)
    assert f1(1.0, 1.0) == 1.0
    assert f1(0.0, 0.0) == 0.0


def test_overall_macro_average() -> None:
    pairs = [
        ([GT], [GT]),  # p 1, r 1
        ([(5.0, 15.0, 0.0, 10.0)], [GT]),  # p 0.5, r 0.5
        ([GT], []),  # a copy claimed on a negative pair: p 0, no recall term
        ([], [GT]),  # a missed copy: r 0, no precision term
        ([], []),  # nothing to say: neither term
    ]
    out = overall_segment_prf(pairs)
    assert out["precision"] == pytest.approx(0.5)
    assert out["recall"] == pytest.approx(0.5)
    assert out["f1"] == pytest.approx(0.5)
    assert out["pairs"] == 5


def test_overall_of_silence_on_negatives_is_perfect() -> None:
    assert overall_segment_prf([([], []), ([], [])]) == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "pairs": 2.0}


def test_average_precision() -> None:
    assert average_precision(["a", "b", "c", "d"], {"a", "c"}) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(["b", "a"], {"a", "x"}) == pytest.approx(0.5 / 2)  # x never retrieved
    assert average_precision(["a", "a", "b"], {"a", "b"}) == 1.0  # a repeat does not push b down
    assert average_precision(["x", "y"], {"a"}) == 0.0
    assert average_precision(["a"], set()) == 0.0


def test_mean_average_precision_skips_queries_without_relevant_ids() -> None:
    runs = [(["a", "b"], {"a"}), (["a", "b"], {"b"}), (["a"], set())]
    assert mean_average_precision(runs) == pytest.approx(0.75)
    assert mean_average_precision([(["a"], set())]) == 0.0
