"""Candidate voting, localisation and the searcher over an in-memory frame index (pure logic:
the Milvus frame index has its own tests against milvus-lite)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from vidsearch.core.frames import FrameHit, FrameSet
from vidsearch.plugins.copies.align import Alignment, AlignParams
from vidsearch.plugins.copies.search import CopyParams, CopySearcher, backgrounds, localise, votes


class MemoryFrames:
    """Exact inner-product search over frame sets (a stand-in for the ANN index)."""

    name = "memory"

    def __init__(self, sets: Sequence[FrameSet]) -> None:
        self.sets = {s.video_id: s for s in sets}

    def search(self, vectors: np.ndarray, k: int, exclude: Sequence[str] = ()) -> list[list[FrameHit]]:
        rows = [(vid, float(t), v) for vid, s in self.sets.items() if vid not in exclude for t, v in zip(s.times, s.vectors)]
        out = []
        for q in vectors:
            scored = sorted(((float(q @ v), vid, t) for vid, t, v in rows), reverse=True)[:k]
            out.append([FrameHit(vid, t, s) for s, vid, t in scored])
        return out

    def frames(self, video_ids: Sequence[str]) -> dict[str, FrameSet]:
        return {v: self.sets[v] for v in video_ids if v in self.sets}


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def video(rng: np.random.Generator, vid: str, n: int, step: float = 2.0, dim: int = 32) -> FrameSet:
    times = np.arange(n, dtype=np.float32) * step + 1.0
    shots = [(float(t - 1.0), float(t + 1.0)) for t in times]
    return FrameSet(vid, 1, times, unit(rng.normal(size=(n, dim))), shots)


def test_votes_take_each_query_frames_best_neighbour_and_fold_mirrors() -> None:
    hits = [[FrameHit("a", 0, 0.9), FrameHit("a", 1, 0.8), FrameHit("b", 0, 0.5)],
            [FrameHit("b", 0, 0.7)],
            [FrameHit("a", 0, 0.95)]]  # row 2 is the mirror of row 0 (n_query = 2)
    v = votes(hits, 2, vote_sim=0.6)
    assert v == pytest.approx({"a": 0.95, "b": 0.7})


def test_background_is_the_nth_nearest_video_not_the_nth_nearest_keyframe() -> None:
    # A frame of a static video: its 3 nearest keyframes are all that video's own, so a
    # keyframe-ranked background (0.97) would cancel the copy; ranked by video it is the 3rd
    # video's best keyframe.
    row = [FrameHit("static", 0, 0.99), FrameHit("static", 1, 0.98), FrameHit("static", 2, 0.97),
           FrameHit("b", 0, 0.6), FrameHit("b", 1, 0.55), FrameHit("c", 0, 0.4), FrameHit("d", 0, 0.3)]
    assert backgrounds([row], 3) == pytest.approx([0.4])
    assert backgrounds([row], 1) == pytest.approx([0.99])
    # fewer videos than the rank came back: the lowest hit (no unseen video reaches more); no hits: 0
    assert backgrounds([row[:5], row[:3], []], 3) == pytest.approx([0.55, 0.97, 0.0])


def test_a_copy_of_a_static_video_survives_the_normalisation() -> None:
    rng = np.random.default_rng(3)
    base = unit(rng.normal(size=32))
    # a fixed-camera reference: 8 keyframes all nearly alike
    static = FrameSet("static", 1, np.arange(8, dtype=np.float32) * 2 + 1,
                      unit(base + 0.05 * rng.normal(size=(8, 32))), [])
    others = [video(rng, f"o{i}", 6) for i in range(10)]
    copied = unit(static.vectors[2:5] + 0.1 * rng.normal(size=(3, 32)))
    query = FrameSet("q", 0, np.array([1.0, 3.0, 5.0], np.float32), copied, [])
    params = CopyParams(background=1.0, vote_sim=0.1, align=AlignParams(min_sim=0.1, single_sim=0.45))
    found = CopySearcher(MemoryFrames([static, *others]), params).search(query)
    assert [m.reference_id for m in found] == ["static"]


def test_localise_widens_to_query_shots_and_maps_through_the_speed() -> None:
    query = FrameSet("q", 0, np.array([5.0, 7.0], np.float32), unit(np.ones((2, 4))), [(4.0, 6.0), (6.0, 9.0)])
    ref = FrameSet("r", 1, np.array([20.0, 24.0], np.float32), unit(np.ones((2, 4))), [(0.0, 30.0), (0.0, 30.0)])
    seg = localise(Alignment((0, 1), (0, 1), 0.9, ((0, 0), (1, 1))), query, ref)
    # speed 2: query 4-9 s around keyframes 5 and 7 -> reference 20 - 2*1 = 18 to 24 + 2*2 = 28
    assert (seg.query_start, seg.query_end, seg.reference_start, seg.reference_end) == pytest.approx((4.0, 9.0, 18.0, 28.0))
    one = localise(Alignment((1, 1), (0, 0), 0.95, ((1, 0),)), query, ref)
    assert (one.reference_start, one.reference_end) == pytest.approx((19.0, 22.0))  # speed 1 for a single keyframe


@pytest.mark.parametrize("method", ["tn", "dp"])
def test_searcher_finds_the_copied_reference_and_the_segment(method: str) -> None:
    rng = np.random.default_rng(0)
    refs = [video(rng, f"r{i}", 8) for i in range(20)]
    src = refs[7]
    # query: 2 unrelated keyframes, then reference frames 2..5 (edited: noise), then 2 unrelated
    copied = unit(src.vectors[2:6] + 0.25 * unit(rng.normal(size=(4, 32))))
    vectors = np.concatenate([unit(rng.normal(size=(2, 32))), copied, unit(rng.normal(size=(2, 32)))])
    times = np.arange(8, dtype=np.float32) * 2.0 + 1.0
    query = FrameSet("q", 0, times, vectors, [(float(t - 1), float(t + 1)) for t in times])
    matches = CopySearcher(MemoryFrames(refs), CopyParams(method=method)).search(query)
    assert matches and matches[0].reference_id == "r7"
    seg = matches[0].segments[0]
    assert (seg.query_start, seg.query_end) == pytest.approx((4.0, 12.0))
    assert (seg.reference_start, seg.reference_end) == pytest.approx((4.0, 12.0))
    assert all(m.reference_id == "r7" for m in matches)  # nothing else shares footage


def test_a_flipped_copy_is_found_through_the_mirrored_query() -> None:
    rng = np.random.default_rng(1)
    refs = [video(rng, f"r{i}", 6) for i in range(10)]
    times = np.array([1.0, 3.0, 5.0], np.float32)
    plain = unit(rng.normal(size=(3, 32)))  # what the flipped copy looks like: unrelated
    mirrored = unit(refs[3].vectors[1:4] + 0.2 * unit(rng.normal(size=(3, 32))))  # flipping it back matches
    query = FrameSet("q", 0, times, plain, [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)])
    searcher = CopySearcher(MemoryFrames(refs))
    assert searcher.search(query) == []
    assert [m.reference_id for m in searcher.search(query, mirrored=mirrored)] == ["r3"]


def test_exclude_and_empty_queries() -> None:
    rng = np.random.default_rng(2)
    refs = [video(rng, f"r{i}", 5) for i in range(5)]
    searcher = CopySearcher(MemoryFrames(refs))
    assert searcher.search(refs[0], exclude=["r0"]) == []
    assert [m.reference_id for m in searcher.search(refs[0])][:1] == ["r0"]
    empty = FrameSet("e", 0, np.zeros(0, np.float32), np.zeros((0, 32), np.float32))
    assert searcher.search(empty) == []


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError):
        CopyParams(method="spd")
