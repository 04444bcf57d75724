"""The Milvus frame index against a private milvus-lite file (no shared server): rows round-trip,
search excludes what it is told to, and the version rule holds for writes, replacements,
removals and empty frame sets. The catalogue's private server is stopped after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vidsearch.core.errors import StoreRejectedError
from vidsearch.core.frames import FrameSet
from vidsearch.core.settings import Settings
from vidsearch.plugins.milvus import lite
from vidsearch.plugins.milvus.frames import MilvusFrameStore, frame_sets

pytestmark = pytest.mark.unit

DIM = 16


def _frames(video_id: str, version: int, n: int = 4, seed: int = 0, shots: bool = True) -> FrameSet:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    times = np.arange(n, dtype=np.float32) * 1.5
    return FrameSet(video_id, version, times, vectors,
                    [(float(t) - 0.5, float(t) + 0.5) for t in times] if shots else [])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MilvusFrameStore]:
    uri = str(tmp_path / "f.db")
    base = Settings()
    settings = base.model_copy(update={"milvus": base.milvus.model_copy(update={"uri": uri})})
    s = MilvusFrameStore(settings, "frames_test", dim=DIM)
    s.ensure()
    try:
        yield s
    finally:
        s.drop()
        s.close()
        lite.stop(uri)


def test_write_search_and_frames_round_trip(store: MilvusFrameStore) -> None:
    a, b = _frames("a", 1, seed=1), _frames("b", 3, n=3, seed=2, shots=False)
    assert store.write(a) and store.write(b)
    assert store.count() == 7

    hits = store.search(a.vectors, k=3)
    assert len(hits) == len(a.times)
    for row, row_hits in enumerate(hits):
        assert (row_hits[0].video_id, row_hits[0].t) == ("a", pytest.approx(float(a.times[row])))
        assert row_hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert [h.score for h in row_hits] == sorted((h.score for h in row_hits), reverse=True)

    got = store.frames(["a", "b", "missing"])
    assert set(got) == {"a", "b"}
    assert got["a"].version == 1 and got["b"].version == 3
    np.testing.assert_allclose(got["a"].times, a.times)
    np.testing.assert_allclose(got["a"].vectors, a.vectors, atol=1e-6)
    assert got["a"].shots == a.shots
    assert got["b"].shots == []  # unknown shots come back unknown, not as (-1, -1)


def test_exclude_drops_videos_but_keeps_k_hits(store: MilvusFrameStore) -> None:
    for i in range(4):
        store.write(_frames(f"v{i}", 1, seed=10 + i))
    query = _frames("v0", 1, seed=10).vectors[:2]
    hits = store.search(query, k=5, exclude=["v0", "v1"])
    for row_hits in hits:
        assert len(row_hits) == 5
        assert {h.video_id for h in row_hits} <= {"v2", "v3"}
    assert store.search(query, k=5)[0][0].video_id == "v0"


def test_stale_write_is_refused_and_newer_write_replaces_every_row(store: MilvusFrameStore) -> None:
    assert store.write(_frames("a", 2, n=5, seed=1))
    assert not store.write(_frames("a", 1, n=3, seed=2))  # older: nothing changes
    assert store.count() == 5
    newer = _frames("a", 3, n=2, seed=3)
    assert store.write(newer)
    assert store.count() == 2  # no leftover rows of version 2
    got = store.frames(["a"])["a"]
    assert got.version == 3
    np.testing.assert_allclose(got.vectors, newer.vectors, atol=1e-6)
    assert store.write(newer)  # a replay of the same version rewrites the same rows
    assert store.count() == 2


def test_remove_follows_the_version_rule_and_leaves_a_tombstone(store: MilvusFrameStore) -> None:
    store.write(_frames("a", 5))
    store.write(_frames("b", 1, seed=4))
    assert not store.remove("a", 4)  # older than what is stored
    assert store.count() == 8
    assert store.remove("a", 5)
    assert store.frames(["a"]) == {} and store.count() == 4
    assert not store.write(_frames("a", 4))  # a replayed older write cannot bring it back
    assert store.count() == 4
    assert store.write(_frames("a", 6, n=2)) and store.count() == 6
    assert store.remove("never-written", 1)  # nothing stored: the tombstone still holds the version
    assert not store.write(_frames("never-written", 0))


def test_empty_set_records_its_version(store: MilvusFrameStore) -> None:
    store.write(_frames("a", 1))
    empty = FrameSet("a", 2, np.zeros(0, np.float32), np.zeros((0, DIM), np.float32))
    assert store.write(empty)
    assert store.count() == 0 and store.frames(["a"]) == {}
    assert not store.write(_frames("a", 1))  # version 2 is recorded even without frames
    assert store.count() == 0


def test_reads_before_any_write_and_bad_sets(store: MilvusFrameStore) -> None:
    other = MilvusFrameStore(store.settings, "frames_never_created", dim=DIM)
    try:
        assert other.count() == 0
        assert other.frames(["a"]) == {}
        assert other.search(np.zeros((2, DIM), np.float32), k=3) == [[], []]
    finally:
        other.close()
    assert store.search(np.zeros((0, DIM), np.float32), k=3) == []
    with pytest.raises(StoreRejectedError):
        store.write(FrameSet("a", 1, np.zeros(2, np.float32), np.ones((2, DIM + 1), np.float32)))
    with pytest.raises(StoreRejectedError):
        store.write(_frames("x" * 300, 1))


def test_frame_sets_orders_by_time_and_drops_partial_shots() -> None:
    rows = [{"video_id": "a", "version": 1, "t": t, "shot_start": s0, "shot_end": s1, "vec": [t, 0.0]}
            for t, s0, s1 in [(3.0, 2.0, 4.0), (1.0, 0.0, 2.0), (2.0, -1.0, -1.0)]]
    got = frame_sets(rows)["a"]
    assert got.times.tolist() == [1.0, 2.0, 3.0]
    assert got.vectors[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert got.shots == []


def test_apply_writes_and_removes_a_batch_under_the_version_rule(store: MilvusFrameStore) -> None:
    store.write(_frames("a", 5, n=2, seed=1))
    store.write(_frames("b", 1, n=3, seed=2))
    store.write(_frames("gone", 1, n=2, seed=3))
    stale = store.apply([_frames("a", 4, n=6, seed=4),   # older than stored: refused
                         _frames("b", 2, n=1, seed=5),   # newer: replaces all three rows
                         _frames("new", 1, n=4, seed=6)],
                        [("gone", 2), ("never", 1)])     # a removal of a video never written leaves a tombstone
    assert stale == 1
    got = store.frames(["a", "b", "new", "gone"])
    assert {k: len(v.times) for k, v in got.items()} == {"a": 2, "b": 1, "new": 4}
    assert got["b"].version == 2 and store.count() == 7
    assert store.apply([_frames("never", 0, n=2)], []) == 1  # the tombstone refuses an older write
    assert store.apply([], []) == 0
