"""Shots: scene scores -> shot bounds at decode time, kept in the feature record, carried by every
keyframe of the document, and kept by the Milvus meta."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from vidsearch.connector.documents import build_doc, keyframe_entries, segment_entries
from vidsearch.encoders.features import FeatureFormatError, VideoFeatures, shot_at
from vidsearch.encoders.media.keyframes import (
    Candidate,
    cut_indices,
    detect_shots,
    scene_scores,
    scene_threshold,
    select_keyframes,
    shots_from_scores,
)
from vidsearch.encoders.ocr import OcrLine
from vidsearch.encoders.speech import Segment

pytestmark = pytest.mark.unit


def _clip(levels: list[float], step: float = 0.5) -> list[Candidate]:
    """One candidate per `step` seconds whose thumbnail is a flat grey of the given level."""
    return [Candidate(t=i * step, rgb=np.zeros((2, 2, 3), np.uint8), thumb=np.full((32, 32), lv)) for i, lv in enumerate(levels)]


def _covers(shots: list[tuple[float, float]], end: float) -> bool:
    return shots[0][0] == 0.0 and shots[-1][1] == end and all(a[1] == b[0] for a, b in zip(shots, shots[1:]))


def test_hard_cuts_split_the_clip_midway_between_the_candidates_around_each_cut() -> None:
    levels = [0.1] * 8 + [0.8] * 8 + [0.3] * 8 + [0.6] * 8  # cuts before t = 4, 8, 12
    shots = detect_shots(_clip(levels), duration=16.0, floor=0.06)
    assert shots == [(0.0, 3.75), (3.75, 7.75), (7.75, 11.75), (11.75, 16.0)]
    assert _covers(shots, 16.0)


def test_no_cut_is_one_shot_over_the_whole_duration() -> None:
    assert detect_shots(_clip([0.5] * 20), duration=10.2, floor=0.06) == [(0.0, 10.2)]


def test_gradual_motion_is_no_cut_but_a_real_cut_after_it_is() -> None:
    drift = [0.1 + i * 0.04 for i in range(20)]  # steady camera motion: every change the same size
    assert detect_shots(_clip(drift), duration=10.0, floor=0.01) == [(0.0, 10.0)]
    shots = detect_shots(_clip([*drift, 0.0, 0.0, 0.0, 0.0]), duration=12.0, floor=0.01)
    assert shots == [(0.0, 9.75), (9.75, 12.0)]


def test_shots_do_not_depend_on_how_many_keyframes_are_kept() -> None:
    levels = [v for v in (0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.4, 0.6) for _ in range(4)]  # 7 cuts, every 2 s
    candidates = _clip(levels)
    assert len(select_keyframes(candidates, k_min=1, k_max=3, floor=0.06)) == 3
    assert len(detect_shots(candidates, duration=16.0, floor=0.06)) == 8


def test_a_busy_pan_is_not_cut_into_slivers() -> None:
    calm = [0.1 + 0.01 * i for i in range(8)]
    pan = [0.8 - 0.12 * i for i in range(7)]  # steady big changes, well above the calm clip's median
    levels = calm + pan + [0.9 + 0.01 * i for i in range(8)]
    candidates = _clip(levels)
    scores = scene_scores([c.thumb for c in candidates])
    threshold = scene_threshold(scores, 0.06, 2.0)
    pan_steps = list(range(9, 15))
    assert set(pan_steps) <= set(cut_indices(scores, threshold, relative=0.0))  # the clip-wide test alone
    assert cut_indices(scores, threshold, relative=2.0) == [8, 15]
    assert detect_shots(candidates, duration=11.5, floor=0.06, relative=2.0) == [(0.0, 3.75), (3.75, 7.25), (7.25, 11.5)]


def test_cuts_closer_than_the_minimum_shot_keep_the_stronger_one() -> None:
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    scores = np.array([np.inf, 0.0, 0.0, 0.0, 0.5, 0.9, 0.0, 0.3])  # 0.5 and 0.9 in a row; 0.3 near the end
    shots = shots_from_scores(times, scores, threshold=0.2, duration=4.0, relative=0.0, min_shot_s=1.0)
    assert shots == [(0.0, 2.25), (2.25, 4.0)]
    assert shots_from_scores(times, scores, threshold=0.2, duration=4.0, relative=0.0, min_shot_s=0.4) == [
        (0.0, 1.75), (1.75, 2.25), (2.25, 3.25), (3.25, 4.0)]


def test_no_timeline_means_no_shots() -> None:
    assert shots_from_scores([], np.zeros(0), 0.1, 5.0) == []
    assert shots_from_scores([0.0], np.array([np.inf]), 0.1, 0.0) == []
    assert shots_from_scores([0.0, 0.5], np.array([np.inf, 0.0]), 0.1, 0.0) == [(0.0, 0.5)]  # no duration: last frame


def test_shot_at_finds_the_span_holding_a_time() -> None:
    shots = [(0.0, 4.0), (4.0, 8.0)]
    assert shot_at(shots, 0.0) == (0.0, 4.0) and shot_at(shots, 4.0) == (4.0, 8.0) and shot_at(shots, 3.99) == (0.0, 4.0)
    assert shot_at(shots, 9.0) == (4.0, 8.0) and shot_at(shots, -1.0) == (0.0, 4.0) and shot_at([], 1.0) is None


def _features(shots: list[tuple[float, float]]) -> VideoFeatures:
    rng = np.random.default_rng(0)
    bridge = rng.standard_normal((3, 384)).astype(np.float32)
    return VideoFeatures(video_id="v", duration_s=12.0, keyframe_times=np.array([0.0, 5.0, 9.0], np.float32),
                         frame_features=np.zeros((3, 1280), np.float32), frame_bridge=bridge,
                         frame_top_classes=np.zeros((3, 5), np.int16), frame_top_probs=np.zeros((3, 5), np.float32),
                         transcript=[Segment(1.0, 3.0, "hello there")],
                         ocr=[OcrLine("SALE", 5.0, 0.9), OcrLine("50% off", 5.0, 0.8), OcrLine("exit", 9.0, 0.9)],
                         shots=shots)


def test_shots_round_trip_through_the_record() -> None:
    feats = _features([(0.0, 4.0), (4.0, 8.5), (8.5, 12.0)])
    back = VideoFeatures.from_bytes(feats.to_bytes())
    assert back.shots == [(0.0, 4.0), (4.0, 8.5), (8.5, 12.0)]
    assert feats.summary()["shots"] == [[0.0, 4.0], [4.0, 8.5], [8.5, 12.0]]


def _with_meta(record: bytes, edit: Any) -> bytes:
    """The record with its JSON member rewritten by `edit(meta)` (arrays untouched)."""
    import io
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(record))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "__meta__.npy":
                arr = np.load(io.BytesIO(data))
                meta = json.loads(arr.tobytes())
                edit(meta)
                buf = io.BytesIO()
                np.save(buf, np.frombuffer(json.dumps(meta).encode(), np.uint8))
                data = buf.getvalue()
            dst.writestr(info.filename, data)
    return out.getvalue()


def test_a_record_written_before_shots_loads_with_no_shots() -> None:
    old = _with_meta(_features([(0.0, 12.0)]).to_bytes(), lambda meta: meta.pop("shots"))
    assert VideoFeatures.from_bytes(old).shots == []


@pytest.mark.parametrize("shots, message", [
    ([[4.0, 2.0]], "ends before it starts"),
    ([[-1.0, 2.0]], "greater than or equal to 0"),
    ([[0.0, float("inf")]], "Infinity is not valid JSON"),
    ("0-4", "shots"),
    ([[float(i), float(i + 1)] for i in range(5000)], "at most 4096"),
])
def test_malformed_shots_are_refused(shots: Any, message: str) -> None:
    def edit(meta: dict) -> None:
        meta["shots"] = shots

    raw = _with_meta(_features([]).to_bytes(), edit)
    with pytest.raises(FeatureFormatError, match=message):
        VideoFeatures.from_bytes(raw)


def test_document_keyframes_carry_their_shot_and_text_becomes_timed_segments() -> None:
    feats = _features([(0.0, 4.0), (4.0, 8.5), (8.5, 12.0)])
    frames = keyframe_entries(feats)
    assert [k["shot"] for k in frames] == [[0.0, 4.0], [4.0, 8.5], [8.5, 12.0]]
    assert len(frames[0]["vector"]) == 384
    assert segment_entries(feats) == [
        {"start": 1.0, "end": 3.0, "text": "hello there", "kind": "asr"},
        {"start": 4.0, "end": 8.5, "text": "SALE 50% off", "kind": "ocr", "t": 5.0},  # one keyframe's lines, its shot
        {"start": 8.5, "end": 12.0, "text": "exit", "kind": "ocr", "t": 9.0},
    ]


def test_without_shots_keyframes_have_none_and_ocr_is_an_instant() -> None:
    feats = _features([])
    assert all("shot" not in k for k in keyframe_entries(feats))
    ocr = [s for s in segment_entries(feats) if s["kind"] == "ocr"]
    assert [(s["start"], s["end"]) for s in ocr] == [(5.0, 5.0), (9.0, 9.0)]


def test_milvus_meta_keeps_shots_and_compacts_vectors_before_dropping_keyframes() -> None:
    from vidsearch.connector.events import VideoUpsert
    from vidsearch.plugins.milvus.videos import MAX_JSON_BYTES, to_row

    feats = _features([(0.0, 4.0), (4.0, 8.5), (8.5, 12.0)])
    event = VideoUpsert(op="upsert", video_id="v", version=1, schema_version=1, title="t", features="precomputed")
    doc = build_doc(event, feats, "m1")
    meta = json.loads(to_row(doc)["meta"])
    assert [k["shot"] for k in meta["keyframes"]] == [[0.0, 4.0], [4.0, 8.5], [8.5, 12.0]]
    assert [s["kind"] for s in meta["segments"]] == ["asr", "ocr", "ocr"] and "keyframes_compact" not in meta

    # 16 keyframes (~52 kB of 4-decimal floats) and 20 kB of text do not fit; compact vectors do
    rng = np.random.default_rng(1)
    big = _features([(0.0, 12.0)])
    big.keyframe_times = np.linspace(0, 11, 16).astype(np.float32)
    big.frame_bridge = rng.standard_normal((16, 384)).astype(np.float32)
    big.transcript = [Segment(0.0, 12.0, "word " * 4000)]
    body = to_row(build_doc(event, big, "m1"))["meta"]
    meta = json.loads(body)
    assert len(body.encode()) <= MAX_JSON_BYTES
    assert meta["keyframes_compact"] is True and "keyframes_truncated" not in meta and meta["segments"]
    for entry, vector in zip(meta["keyframes"], big.frame_bridge, strict=True):
        stored = np.asarray(entry["vector"], np.float32)
        assert all(isinstance(x, int) for x in entry["vector"]) and entry["shot"] == [0.0, 12.0]
        cos = float(stored @ vector / np.linalg.norm(stored) / np.linalg.norm(vector))
        assert cos > 0.9999
