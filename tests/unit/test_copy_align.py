"""Temporal alignment (TN and DP) on hand-made similarity matrices: copies shifted, sped up,
several per pair, single-frame, reversed, irregular keyframe times; ranges asserted exactly."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from vidsearch.plugins.copies.align import ALIGNERS, Alignment, AlignParams, dp_align, tn_align

pytestmark = pytest.mark.unit

Aligner = Callable[..., list[Alignment]]
aligners = pytest.mark.parametrize("align", list(ALIGNERS.values()), ids=list(ALIGNERS))


def _noise(seed: int, n: int, m: int, hi: float = 0.55) -> np.ndarray:
    """Unrelated footage: similarities up to `hi`, below the default min_sim."""
    return np.random.default_rng(seed).uniform(-0.2, hi, (n, m))


def _copy(sim: np.ndarray, pairs: list[tuple[int, int]], seed: int = 1, lo: float = 0.8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    for i, j in pairs:
        sim[i, j] = rng.uniform(lo, 1.0)
    return sim


def _steps(n: int, step: float = 2.0, start: float = 0.0) -> np.ndarray:
    return start + step * np.arange(n)


def _ranges(found: list[Alignment]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    return sorted((a.q, a.r) for a in found)


@aligners
def test_diagonal_copy(align: Aligner) -> None:
    pairs = [(k, k) for k in range(2, 9)]
    sim = _copy(_noise(0, 12, 12), pairs)
    found = align(sim, _steps(12), _steps(12))
    assert _ranges(found) == [((2, 8), (2, 8))]
    assert found[0].matches == tuple(pairs)
    assert found[0].score == pytest.approx(np.mean([sim[i, j] for i, j in pairs]))


@aligners
def test_shifted_copy(align: Aligner) -> None:
    pairs = [(k, k + 5) for k in range(1, 7)]
    sim = _copy(_noise(2, 10, 14), pairs)
    found = align(sim, _steps(10), _steps(14, start=3.0))
    assert _ranges(found) == [((1, 6), (6, 11))]
    assert found[0].matches == tuple(pairs)


@aligners
@pytest.mark.parametrize("speed", [0.75, 1.5])
def test_speed_changed_copy(align: Aligner, speed: float) -> None:
    # Reference keyframes every 2*speed seconds: the copy plays at `speed` x the query's pace.
    pairs = [(k, k - 1) for k in range(2, 8)]
    sim = _copy(_noise(3, 10, 10), pairs)
    found = align(sim, _steps(10), _steps(10, step=2.0 * speed))
    assert _ranges(found) == [((2, 7), (1, 6))]


@aligners
def test_speed_outside_the_allowed_band_breaks_the_chain(align: Aligner) -> None:
    # The same copy at 3x speed: no edge passes the speed test, and its frames are too weak alone.
    pairs = [(k, k - 1) for k in range(2, 8)]
    sim = _copy(_noise(3, 10, 10), pairs, lo=0.8)
    np.clip(sim, None, 0.84, out=sim)
    assert align(sim, _steps(10), _steps(10, step=6.0), AlignParams(max_gap_s=40.0)) == []


@aligners
def test_two_separate_copied_segments(align: Aligner) -> None:
    first = [(k, k + 8) for k in range(1, 5)]  # query 1-4 <- reference 9-12
    second = [(k, k - 8) for k in range(9, 13)]  # query 9-12 <- reference 1-4 (order swapped)
    sim = _copy(_noise(4, 16, 16), first + second)
    found = align(sim, _steps(16), _steps(16))
    assert _ranges(found) == [((1, 4), (9, 12)), ((9, 12), (1, 4))]
    assert [a.score for a in found] == sorted((a.score for a in found), reverse=True)


@aligners
def test_a_time_gap_beyond_max_gap_splits_segments(align: Aligner) -> None:
    # Same diagonal, but 14 s of unrelated footage between the runs (max_gap_s is 10).
    pairs = [(k, k) for k in (1, 2, 3, 10, 11, 12, 13)]
    sim = _copy(_noise(5, 16, 16), pairs)
    found = align(sim, _steps(16), _steps(16))
    assert _ranges(found) == [((1, 3), (1, 3)), ((10, 13), (10, 13))]


@aligners
def test_noise_below_min_sim_finds_nothing(align: Aligner) -> None:
    sim = _noise(6, 16, 16, hi=0.59)
    assert align(sim, _steps(16), _steps(16)) == []


@aligners
def test_single_strong_frame_is_a_one_frame_segment(align: Aligner) -> None:
    sim = _noise(7, 8, 9)
    sim[4, 7] = 0.95
    found = align(sim, _steps(8), _steps(9))
    assert found == [Alignment((4, 4), (7, 7), pytest.approx(0.95), ((4, 7),))]


@aligners
def test_single_weak_frame_is_not_a_segment(align: Aligner) -> None:
    sim = _noise(7, 8, 9)
    sim[4, 7] = 0.7
    assert align(sim, _steps(8), _steps(9)) == []


@aligners
def test_reversed_order_is_not_one_segment(align: Aligner) -> None:
    pairs = [(2 + k, 9 - k) for k in range(6)]  # i up, j down
    weak = _copy(_noise(8, 12, 12), pairs, lo=0.8)
    np.clip(weak, None, 0.84, out=weak)
    assert align(weak, _steps(12), _steps(12)) == []
    strong = _copy(_noise(8, 12, 12), pairs, lo=0.9)
    found = align(strong, _steps(12), _steps(12))
    assert found  # each strong frame may stand alone ...
    assert all(len(a.matches) == 1 for a in found)  # ... but never as one chain


@aligners
def test_irregular_keyframe_times(align: Aligner) -> None:
    q_times = np.array([0.0, 0.7, 3.1, 3.9, 8.2, 9.0, 15.5, 16.1, 30.0])
    r_times = np.array([5.0, 11.2, 13.6, 14.4, 18.7, 19.5, 26.0, 26.6, 35.0])  # copy = query + 10.5 s
    pairs = [(k, k) for k in range(1, 8)]
    sim = _copy(_noise(9, 9, 9), pairs)
    sim[8, 8] = 0.8  # next by index, but 13.9 s later on the query: not the same run
    found = align(sim, q_times, r_times)
    assert _ranges(found) == [((1, 7), (1, 7))]


@aligners
def test_a_jump_that_is_short_in_index_but_long_in_time_is_cut(align: Aligner) -> None:
    q_times = np.array([0.0, 2.0, 4.0, 30.0, 32.0, 34.0])
    sim = _copy(_noise(10, 6, 6), [(k, k) for k in range(6)])
    found = align(sim, q_times, q_times)
    assert _ranges(found) == [((0, 2), (0, 2)), ((3, 5), (3, 5))]


@aligners
@pytest.mark.parametrize("shape", [(0, 0), (0, 4), (3, 0)])
def test_empty_matrix(align: Aligner, shape: tuple[int, int]) -> None:
    assert align(np.zeros(shape), np.zeros(shape[0]), np.zeros(shape[1])) == []


@aligners
def test_nan_is_never_a_match(align: Aligner) -> None:
    sim = np.full((8, 8), np.nan)
    for k in range(2, 6):
        sim[k, k] = 0.9
    found = align(sim, _steps(8), _steps(8))
    assert _ranges(found) == [((2, 5), (2, 5))]


@aligners
def test_segments_never_overlap_on_the_query_axis(align: Aligner) -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        sim = rng.uniform(-0.2, 0.75, (30, 30))  # noisy: plenty of spurious matches
        t = np.cumsum(rng.uniform(0.5, 3.0, 30))
        found = align(sim, t, t)
        spans = sorted(a.q for a in found)
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
        assert [a.score for a in found] == sorted((a.score for a in found), reverse=True)
        for a in found:
            for (i0, j0), (i1, j1) in zip(a.matches, a.matches[1:]):
                dq, dr = t[i1] - t[i0], t[j1] - t[j0]
                assert i1 > i0 and j1 > j0 and 0 < dq <= 10 and dr <= 10 and 0.5 * dq <= dr <= 2 * dq


def test_dp_finds_a_source_clip_repeated_in_the_query_tn_does_not() -> None:
    pairs = [(k, k + 2) for k in range(0, 4)] + [(k, k - 6) for k in range(8, 12)]  # both read ref 2-5
    sim = _copy(_noise(11, 12, 8), pairs)
    assert _ranges(dp_align(sim, _steps(12), _steps(8))) == [((0, 3), (2, 5)), ((8, 11), (2, 5))]
    assert len(tn_align(sim, _steps(12), _steps(8))) == 1


def test_tn_chains_never_jump_across_an_emitted_reference_range_dp_chains_may() -> None:
    q_times = np.array([0.0, 1.0, 5.0, 6.0, 20.0, 22.0, 24.0])
    r_times = np.array([0.0, 1.0, 2.0, 4.0, 6.0, 8.5, 9.5])
    sim = _noise(15, 7, 7)
    for i, j in [(4, 2), (5, 3), (6, 4)]:  # the strongest copy: reference 2-4
        sim[i, j] = 0.99
    for i, j in [(0, 0), (1, 1), (2, 5), (3, 6)]:  # a weaker run whose one jump skips reference 2-4
        sim[i, j] = 0.7
    tn, dp = tn_align(sim, q_times, r_times), dp_align(sim, q_times, r_times)
    assert _ranges(tn) == [((0, 1), (0, 1)), ((2, 3), (5, 6)), ((4, 6), (2, 4))]
    assert _ranges(dp) == [((0, 3), (0, 6)), ((4, 6), (2, 4))]


def test_tn_keeps_only_top_k_per_row_dp_keeps_every_match() -> None:
    pairs = [(k, k) for k in range(1, 8)]
    sim = _copy(_noise(12, 9, 16), pairs, lo=0.8)
    sim[4, 10:16] = 0.97  # six look-alikes push the true match out of row 4's top five
    sim[4, 4] = 0.9
    tn, dp = tn_align(sim, _steps(9), _steps(16)), dp_align(sim, _steps(9), _steps(16))
    assert _ranges(tn) == _ranges(dp) == [((1, 7), (1, 7))]
    assert (4, 4) in dp[0].matches and (4, 4) not in tn[0].matches


def test_max_segments_caps_the_output() -> None:
    pairs = [(k, 15 - k) for k in range(16)]  # sixteen unrelated strong single frames
    sim = _copy(_noise(13, 16, 16), pairs, lo=0.9)
    assert len(tn_align(sim, _steps(16), _steps(16), AlignParams(max_segments=3))) == 3


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        AlignParams(min_sim=0.9, single_sim=0.8)
    with pytest.raises(ValueError):
        AlignParams(min_speed=2.0, max_speed=1.0)
    with pytest.raises(ValueError):
        tn_align(np.zeros((2, 2)), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError):
        dp_align(np.zeros((2, 2)), np.array([1.0, 0.0]), np.zeros(2))


@aligners
def test_fast_enough_for_a_long_pair(align: Aligner) -> None:
    rng = np.random.default_rng(14)
    sim = rng.normal(0.3, 0.12, (200, 200))
    t = _steps(200)
    for q0, r0, n in [(10, 50, 20), (60, 5, 15), (120, 130, 30)]:
        for k in range(n):
            sim[q0 + k, r0 + k] = 0.9
    align(sim, t, t)
    start = time.perf_counter()
    found = align(sim, t, t)
    elapsed = time.perf_counter() - start
    assert {(10, 29), (60, 74), (120, 149)} <= {a.q for a in found}
    assert elapsed < 0.5  # about 15 ms on a shared laptop core; the bound only catches a blow-up
