"""Moments from shots (plugins/retrieval/moments.py) on hand-made keyframes and segments, and the
pure metrics of the moment benchmark (ops/modeling/moments_eval.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from vidsearch.ops.modeling.moments_eval import Outcome, iou, r1_at_iou, summarize
from vidsearch.plugins.retrieval.moments import best_moment, grow, top_moments

pytestmark = pytest.mark.unit

Q = np.array([1.0, 0.0, 0.0], np.float32)
AXES = {"q": [1.0, 0.0, 0.0], "y": [0.0, 1.0, 0.0], "z": [0.0, 0.0, 1.0]}


def vec(cos: float, other: str = "y") -> list[float]:
    """A unit vector whose cosine with Q is `cos`."""
    return (cos * np.asarray(AXES["q"]) + np.sqrt(1 - cos**2) * np.asarray(AXES[other])).tolist()


def kf(t: float, shot: tuple[float, float] | None, cos: float) -> dict[str, Any]:
    out: dict[str, Any] = {"t": t, "vector": vec(cos)}
    if shot is not None:
        out["shot"] = list(shot)
    return out


SHOTS = [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0), (12.0, 16.0)]


def frames(*cosines: float) -> list[dict[str, Any]]:
    """One keyframe at the start of each of SHOTS, with the given cosines."""
    return [kf(s[0], s, c) for s, c in zip(SHOTS, cosines, strict=False)]


def embed_by_table(table: dict[str, float]):  # noqa: ANN201 - EmbedTexts
    """An embedder mapping each text to a vector of the given cosine with Q; records its calls."""
    def embed(texts: list[str]) -> np.ndarray:
        embed.calls.append(list(texts))  # type: ignore[attr-defined]
        return np.asarray([vec(table[t], "z") for t in texts], np.float32)

    embed.calls = []  # type: ignore[attr-defined]
    return embed


def test_the_moment_is_the_shot_of_the_best_keyframe() -> None:
    m = best_moment(Q, frames(0.2, 0.3, 0.8, 0.25), [], 16.0)
    assert m is not None and (m.start, m.end) == (8.0, 12.0)
    assert m.evidence == {"kind": "keyframe", "t": 8.0, "shots": 1} and m.score == pytest.approx(0.8, abs=1e-4)


def test_a_shot_is_scored_by_the_mean_of_its_keyframes() -> None:
    keys = [kf(0.0, SHOTS[0], 0.9), kf(2.0, SHOTS[0], 0.1), kf(4.0, SHOTS[1], 0.6), kf(6.0, SHOTS[1], 0.6)]
    m = best_moment(Q, keys, [], 8.0)
    assert m is not None and (m.start, m.end) == (4.0, 8.0)  # 0.6 beats (0.9 + 0.1) / 2


def test_a_scene_cut_in_two_becomes_one_moment_an_unrelated_neighbour_does_not_join() -> None:
    m = best_moment(Q, frames(0.2, 0.79, 0.8, 0.25), [], 16.0)
    assert m is not None and (m.start, m.end) == (4.0, 12.0) and m.evidence["shots"] == 2
    m = best_moment(Q, frames(0.2, 0.6, 0.8, 0.25), [], 16.0)
    assert m is not None and (m.start, m.end) == (8.0, 12.0)


def test_growth_needs_a_neighbour_close_to_the_seed_relative_to_the_median() -> None:
    assert grow([0.2, 0.79, 0.8, 0.25], 2, set()) == (1, 2)
    assert grow([0.2, 0.79, 0.8, 0.25], 2, {1}) == (2, 2)  # taken by an earlier moment
    assert grow([0.5, 0.49], 0, set()) == (0, 0)  # two shots: only a tie joins
    assert grow([0.5, 0.5], 0, set()) == (0, 1)
    assert grow([0.9, None, 0.9], 0, set()) == (0, 0)  # a span without evidence is a wall


def test_speech_decides_when_it_matches_better_and_the_moment_is_still_the_shot() -> None:
    segs = [{"start": 12.5, "end": 15.0, "text": "the answer", "kind": "asr"},
            {"start": 1.0, "end": 2.0, "text": "noise", "kind": "asr"}]
    embed = embed_by_table({"the answer": 0.9, "noise": 0.1})
    m = best_moment(Q, frames(0.2, 0.3, 0.5, 0.25), segs, 16.0, embed)
    assert m is not None and (m.start, m.end) == (12.0, 16.0)
    assert m.evidence == {"kind": "transcript", "text": "the answer", "t": 12.0, "shots": 1}
    assert embed.calls == [["the answer", "noise"]]


def test_a_segment_counts_only_for_shots_it_really_overlaps() -> None:
    segs = [{"start": 7.8, "end": 11.8, "text": "spoken over a cut", "kind": "asr"}]  # 0.2 s in shot 2, 3.8 s in shot 3
    m = best_moment(Q, frames(0.2, 0.3, 0.3, 0.2), segs, 16.0, embed_by_table({"spoken over a cut": 0.9}))
    assert m is not None and (m.start, m.end) == (8.0, 12.0)
    long = [{"start": 4.5, "end": 11.5, "text": "a long sentence", "kind": "asr"}]  # 3.5 s in both
    m = best_moment(Q, frames(0.2, 0.3, 0.3, 0.2), long, 16.0, embed_by_table({"a long sentence": 0.9}))
    assert m is not None and (m.start, m.end) == (4.0, 12.0) and m.evidence["kind"] == "transcript"


def test_on_screen_text_read_on_one_frame_counts_for_its_shot() -> None:
    segs = [{"start": 5.0, "end": 5.0, "text": "EXIT 12", "kind": "ocr", "t": 5.0}]
    m = best_moment(Q, frames(0.3, 0.2, 0.3, 0.25), segs, 16.0, embed_by_table({"EXIT 12": 0.7}))
    assert m is not None and (m.start, m.end) == (4.0, 8.0) and m.evidence["kind"] == "ocr"


def test_time_between_stored_shots_is_still_a_candidate_for_text() -> None:
    keys = [kf(0.0, (0.0, 4.0), 0.3), kf(9.0, (8.0, 12.0), 0.3)]  # the shot 4-8 s kept no keyframe
    segs = [{"start": 5.0, "end": 7.0, "text": "right here", "kind": "asr"}]
    m = best_moment(Q, keys, segs, 12.0, embed_by_table({"right here": 0.8}))
    assert m is not None and (m.start, m.end) == (4.0, 8.0) and "t" not in m.evidence


def test_top_moments_are_disjoint_and_best_first() -> None:
    found = top_moments(Q, frames(0.7, 0.1, 0.9, 0.5), [], 16.0, None, 3)
    assert [(m.start, m.end) for m in found] == [(8.0, 12.0), (0.0, 4.0), (12.0, 16.0)]
    assert [m.score for m in found] == sorted((m.score for m in found), reverse=True)
    assert len(top_moments(Q, frames(0.7, 0.1), [], 8.0, None, 5)) == 2
    grown = top_moments(Q, frames(0.1, 0.88, 0.9, 0.2), [], 16.0, None, 3)
    assert [(m.start, m.end) for m in grown] == [(4.0, 12.0), (12.0, 16.0), (0.0, 4.0)]


def test_only_the_direction_of_keyframe_vectors_matters() -> None:
    """Milvus may store compact integer vectors: scaling must not change the moment."""
    keys = frames(0.2, 0.3, 0.8, 0.25)
    scaled = [{**k, "vector": [round(x * 127) for x in k["vector"]]} for k in keys]
    a, b = best_moment(Q, keys, [], 16.0), best_moment(Q, scaled, [], 16.0)
    assert a is not None and b is not None and (a.start, a.end) == (b.start, b.end)
    assert a.score == pytest.approx(b.score, abs=0.01)


def test_without_shots_the_keyframe_windows_remain() -> None:
    keys = [kf(0.0, None, 0.0), kf(2.0, None, 1.0), kf(4.0, None, 0.98), kf(8.0, None, 0.0)]
    m = best_moment(Q, keys, [], 10.0)
    assert m is not None and m.evidence["kind"] == "keyframe" and (m.start, m.end) in ((1.0, 3.0), (3.0, 6.0))
    found = top_moments(Q, keys, [], 10.0, None, 4)
    assert len(found) == 4 and all(a.end <= b.start or b.end <= a.start for a in found for b in found if a is not b)
    segs = [{"start": 3.0, "end": 5.5, "text": "hello"}]  # a transcript segment from before "kind" existed
    m = best_moment(Q, keys, segs, 10.0, embed_by_table({"hello": 1.0}))
    assert m is not None and m.evidence == {"kind": "transcript", "text": "hello"} and (m.start, m.end) == (3.0, 5.5)
    ocr = [{"start": 8.0, "end": 8.0, "text": "EXIT", "kind": "ocr"}]  # an instant takes its keyframe's window
    m = best_moment(Q, keys, ocr, 10.0, embed_by_table({"EXIT": 1.0}))
    assert m is not None and m.evidence["kind"] == "ocr" and (m.start, m.end) == (6.0, 10.0)


def test_mixed_documents_fall_back_and_nothing_gives_none() -> None:
    keys = frames(0.2, 0.9)
    keys[0].pop("shot")
    m = best_moment(Q, keys, [], 8.0)
    assert m is not None and m.evidence.get("shots") is None  # windows, not shots
    assert best_moment(Q, [], [], None) is None
    assert top_moments(Q, [], [], 10.0, None, 3) == []


def test_iou() -> None:
    assert iou((0.0, 4.0), (0.0, 4.0)) == 1.0
    assert iou((0.0, 4.0), (2.0, 6.0)) == pytest.approx(2 / 6)
    assert iou((0.0, 4.0), (4.0, 8.0)) == 0.0
    assert iou((0.0, 8.0), (0.0, 4.0)) == 0.5
    assert iou((3.0, 3.0), (0.0, 4.0)) == 0.0


def test_r1_at_iou_needs_the_right_video_first_and_enough_overlap() -> None:
    outcomes = [Outcome(1, 0.8), Outcome(1, 0.6), Outcome(2, 0.0), Outcome(None, 0.0), Outcome(1, 0.4)]
    assert r1_at_iou(outcomes, 0.5) == 40.0 and r1_at_iou(outcomes, 0.7) == 20.0
    m = summarize(outcomes)
    assert (m["r1"], m["r10"], m["found"]) == (60.0, 80.0, 3)
    assert m["iou50_when_found"] == pytest.approx(100 * 2 / 3, abs=0.01)
    assert m["miou"] == pytest.approx(100 * (0.8 + 0.6 + 0.4) / 5, abs=0.01)
    assert summarize([])["queries"] == 0


def test_the_benchmark_plan_uses_only_val_and_test_captions_one_stamp_each() -> None:
    from vidsearch.ops.datasets.compilations import SHOTS_PER_VIDEO, plan, records
    from vidsearch.ops.datasets.stamps import stamps
    from vidsearch.ops.datasets.tuxpaint import split_of

    planned = plan(stamps())
    assert {c.split for c in planned} == {"val", "test"}
    captions = [s.caption.lower() for c in planned for s in c.stamps]
    assert len(captions) == len(set(captions))  # one answer per query
    for c in planned:
        assert len(c.stamps) == SHOTS_PER_VIDEO and all(split_of(s.caption) == c.split for s in c.stamps)
        assert all(3.49 <= b - a <= 4.51 for a, b in c.shots) and c.shots[0][0] == 0.0
        assert all(x[1] == y[0] for x, y in zip(c.shots, c.shots[1:]))
        video, queries = records(c)
        assert video.title.startswith("VID_") and video.description == "" and video.subset == "text_poor"
        assert [q.moment for q in queries] == c.shots and all(q.relevant == [c.video_id] for q in queries)
    limited = plan(stamps(), limit=2)
    assert [c.video_id for c in limited] == [c.video_id for c in planned if c.split == "val"][:2] + [
        c.video_id for c in planned if c.split == "test"][:2]


def test_a_query_moment_is_a_span_of_one_video() -> None:
    from pydantic import ValidationError

    from vidsearch.ops.datasets.format import QueryRecord

    assert QueryRecord(query_id="q", text="a frog", relevant=["v"], moment=(4.0, 8.0)).moment == (4.0, 8.0)
    with pytest.raises(ValidationError, match="end after it starts"):
        QueryRecord(query_id="q", text="a frog", relevant=["v"], moment=(4.0, 4.0))
    with pytest.raises(ValidationError, match="exactly one relevant video"):
        QueryRecord(query_id="q", text="a frog", relevant=["v", "w"], moment=(0.0, 4.0))
