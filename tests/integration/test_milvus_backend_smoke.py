"""MilvusVideoStore against the real milvus-lite, on the server URI and on an embedded file URI:
versioned writes with tombstones, filtered searches, sliced scans, counts, NCL rewrites, the
alias swap and drop. The shared conformance suite pins the contract in more detail; this is the
backend's own smoke test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from vidsearch.core.documents import (
    DIM,
    STORED_FIELDS,
    VECTOR_FIELDS,
    IndexDoc,
    Tombstone,
)
from vidsearch.core.filters import Filters
from vidsearch.core.settings import Settings
from vidsearch.plugins.backends import open_store
from vidsearch.plugins.milvus.store import MilvusVideoStore

pytestmark = pytest.mark.integration

V1, V2 = "smoke-v1", "smoke-v2"
RNG = np.random.default_rng(7)


def _unit() -> np.ndarray:
    v = RNG.standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _vectors() -> dict[str, np.ndarray]:
    return {f: _unit() for f in VECTOR_FIELDS}


def _doc(vid: str, version: int, title: str, *, tags: list[str], language: str = "en", duration: float | None = 12.3,
         vectors: dict[str, np.ndarray] | None = None, by_version: dict[str, dict[str, np.ndarray]] | None = None,
         description: str = "") -> IndexDoc:
    return IndexDoc(video_id=vid, version=version, title=title, description=description or f"about {title}",
                    tags=tags, language=language, duration=duration,
                    published_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC), transcript="", ocr="",
                    vectors=vectors or _vectors(), keyframes=[{"t": 1.5, "vector": [0.25] * 4}],
                    segments=[{"start": 0.0, "end": 2.0, "text": "hi"}], extra={"k": "v"}, model_version=V1,
                    media_uri=f"file:///m/{vid}.mp4", by_version=by_version or {})


@pytest.fixture(params=["server", "embedded"])
def store(request: pytest.FixtureRequest, stack: object, settings: Settings, tmp_path: Path,
          unique_name: str) -> Iterator[MilvusVideoStore]:
    milvus = settings.milvus
    if request.param == "embedded":
        milvus = milvus.model_copy(update={"uri": str(tmp_path / "catalogue.db"), "lite_idle_s": 30.0})
    cfg = settings.model_copy(update={"milvus": milvus, "indexer": settings.indexer.model_copy(
        update={"collection_prefix": unique_name, "model_version": V1})})
    s = open_store("milvus", cfg, timeout_s=30.0)
    assert isinstance(s, MilvusVideoStore)
    try:
        yield s
    finally:
        s.drop_alias()
        for version in (V1, V2):
            s.drop(version)
        s.close()


def test_versions_tombstones_searches_scans_and_swap(store: MilvusVideoStore) -> None:
    store.ensure(V1, alias=True)
    store.ensure(V2, alias=True)  # the alias exists already: it must not move
    assert store.alias_target() == store.physical(V1)
    assert store.exists(V1) and store.exists(V2)

    fox_v2 = _vectors()
    docs = [
        _doc("fox", 5, "red fox jumping", tags=["nature", "snow"], by_version={V2: fox_v2}),
        _doc("boat", 5, "sailing boat at sea", tags=["sea"], language="fr"),
        _doc("city", 5, "city traffic at night", tags=["urban"], duration=None, description="rush hour lights"),
        _doc("lake", 5, "a calm lake fox", tags=["nature", "caf\u00e9 \"x\\"],
             vectors={**_vectors(), "fused": np.zeros(DIM, np.float32)}),
    ]
    assert store.write(V1, docs).written == 4
    assert store.write(V2, docs[:2]).written == 2
    store.refresh(V1)
    assert store.count(V1) == 4 and store.count() == 4 and store.count(V2) == 2

    # each version holds its own vectors
    assert np.allclose(store.vectors("vec_fused", V2)["fox"], fox_v2["fused"], atol=1e-6)
    assert not np.allclose(store.vectors("vec_fused", V1)["fox"], fox_v2["fused"], atol=1e-3)
    assert "lake" not in store.vectors("vec_fused", V1)  # all-zero vectors are skipped

    # tombstone, then a replay of the older upsert is stale and cannot resurrect it
    gone = store.write(V1, [Tombstone("boat", 6)])
    assert (gone.written, gone.stale) == (1, 0)
    replay = store.write(V1, [docs[1], Tombstone("boat", 4)])
    assert (replay.written, replay.stale, replay.rejected) == (0, 2, {})
    assert "boat" not in store.fetch(["boat", "fox"], V1)
    same = store.write(V1, [docs[0]])  # the same version again: an idempotent overwrite
    older = store.write(V1, [_doc("fox", 4, "older fox", tags=[])])
    assert (same.written, older.stale) == (1, 1)
    assert store.count(V1) == 3
    newer = store.write(V1, [_doc("boat", 7, "boat is back", tags=["sea"], language="fr")])
    assert newer.written == 1 and store.fetch(["boat"])["boat"]["title"] == "boat is back"

    # stored documents
    fetched = store.fetch(["fox", "city", "missing"])
    assert set(fetched) == {"fox", "city"}
    fox = fetched["fox"]
    assert tuple(fox) == STORED_FIELDS
    assert (fox["version"], fox["model_version"], fox["title"], fox["language"], fox["duration"]) == (5, V1, "red fox jumping", "en", 12.3)
    assert fox["description"] == "about red fox jumping" and fox["tags"] == ["nature", "snow"]
    assert datetime.fromisoformat(fox["published_at"]) == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert fox["keyframes"] == [{"t": 1.5, "vector": [0.25] * 4}] and fox["segments"][0]["text"] == "hi"
    assert (fox["extra"], fox["media_uri"], fox["transcript"], fox["ocr"]) == ({"k": "v"}, "file:///m/fox.mp4", None, None)
    assert fetched["city"]["duration"] is None and fetched["city"]["description"] == "rush hour lights"

    # searches: BM25 and k-NN, each with the filter inside the search
    hits = store.bm25("fox", Filters(), 10)
    assert set(hits) == {"fox", "lake"} and all(v > 0 for v in hits.values())
    assert hits.docs["fox"] == {"title": "red fox jumping", "language": "en", "duration": 12.3, "tags": ["nature", "snow"],
                                "text_lengths": docs[0].text_lengths}
    assert set(store.bm25("fox", Filters(tags=["snow"]), 10)) == {"fox"}
    assert store.bm25("the a of", Filters(), 10) == {}
    assert set(store.bm25("fox", Filters(tags=["caf\u00e9 \"x\\"]), 10)) == {"lake"}  # non-ASCII, quote, backslash
    assert store.bm25("fox", Filters(language='e" or id != "'), 10) == {}  # an injection attempt is just a value
    query = docs[2].vectors["visual"]
    knn = store.knn("vec_visual", query, Filters(), 2)
    assert next(iter(knn)) == "city" and knn["city"] == pytest.approx(1.0, abs=1e-3)
    assert "city" not in store.knn("vec_visual", query, Filters(duration_min=1.0), 10)
    assert set(store.knn("vec_visual", query, Filters(language="fr", tags=["sea"]), 10)) == {"boat"}
    assert set(store.knn("vec_fused", fox_v2["fused"], Filters(), 1, version=V2)) == {"fox"}

    # scans: two slices cover every live id exactly once, the same way every time
    def slice_ids(i: int) -> list[str]:
        return [d["video_id"] for page in store.scan(V1, slice_id=i, slices=2, batch=1) for d in page]

    first = [slice_ids(0), slice_ids(1)]
    assert sorted(first[0] + first[1]) == ["boat", "city", "fox", "lake"]
    assert [slice_ids(0), slice_ids(1)] == first
    assert [d["video_id"] for page in store.scan() for d in page] != []
    assert store.id_versions(V1) == {"fox": (5, V1), "boat": (7, V1), "city": (5, V1), "lake": (5, V1)}
    assert store.id_versions(V2)["fox"] == (5, V2)

    # NCL: vec_ncl = [fused; bias], the document's version kept, unknown ids ignored
    assert store.write_ncl({"fox": 0.5, "city": -0.25, "nobody": 1.0}) == 2
    ncl = store.vectors("vec_ncl", V1)
    assert ncl["fox"][-1] == pytest.approx(0.5) and np.allclose(ncl["fox"][:-1], docs[0].vectors["fused"], atol=1e-6)
    assert ncl["city"][-1] == pytest.approx(-0.25)
    assert store.id_versions(V1)["fox"] == (5, V1)
    assert set(store.bm25("fox", Filters(), 10)) == {"fox", "lake"}  # BM25 survives the rewrite

    # remove, swap, drop
    store.remove(V2, ["boat"])
    assert store.count(V2) == 1
    moved = store.swap(V2)
    assert moved == {"alias": store.alias, "from": store.physical(V1), "to": store.physical(V2)}
    assert store.alias_target() == store.physical(V2) and store.count() == 1
    assert store.install(V1) == {"collection": store.physical(V1), "created": False,
                                 "alias": {store.alias: store.physical(V2)}}
    store.drop(V1)
    assert not store.exists(V1) and store.exists(V2)
    assert store.healthy()


def test_install_creates_then_reports_unchanged(store: MilvusVideoStore) -> None:
    first = store.install(V1)
    assert first == {"collection": store.physical(V1), "created": True, "alias": {store.alias: store.physical(V1)}}
    assert store.install(V1)["created"] is False
    store.drop_alias()
    assert store.alias_target() is None
    assert store.swap(V1)["from"] is None and store.alias_target() == store.physical(V1)


def test_embedded_store_survives_its_server_restarting(stack: object, settings: Settings, tmp_path: Path,
                                                        unique_name: str) -> None:
    """The channel of a restarted server is dead even once the server is back: a write retries on
    a new channel and a read reconnects at once, so neither fails."""
    from vidsearch.plugins.milvus import lite

    uri = str(tmp_path / "restart.db")
    cfg = settings.model_copy(update={"milvus": settings.milvus.model_copy(update={"uri": uri, "lite_idle_s": 30.0}),
                                      "indexer": settings.indexer.model_copy(update={"collection_prefix": unique_name})})
    store = MilvusVideoStore(cfg, timeout_s=30.0)
    try:
        store.ensure(V1, alias=True)
        assert store.write(V1, [_doc("one", 1, "first heron", tags=[])]).written == 1
        lite.stop(uri)
        assert store.write(V1, [_doc("two", 1, "second heron", tags=[])]).written == 1
        lite.stop(uri)
        assert store.count() == 2 and set(store.bm25("heron", Filters(), 5)) == {"one", "two"}
    finally:
        store.drop_alias()
        store.drop(V1)
        store.close()
        lite.stop(uri)
