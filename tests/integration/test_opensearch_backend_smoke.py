"""Smoke test of `OpenSearchVideoStore` against the real OpenSearch: one walk through the contract
(ensure, versioned writes into two model versions, tombstone and stale replay, filtered BM25 and
k-NN, sliced scan, NCL rewrite, swap, install, drop). The conformance suite pins each behaviour
across backends; this checks the OpenSearch-specific wiring end to end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import numpy as np
import pytest
from opensearchpy.exceptions import NotFoundError

from vidsearch.core.documents import DIM, VECTOR_FIELDS, IndexDoc, Tombstone
from vidsearch.core.filters import Filters
from vidsearch.core.settings import Settings, load_settings
from vidsearch.plugins.opensearch.install import template_name
from vidsearch.plugins.opensearch.store import OpenSearchVideoStore

pytestmark = pytest.mark.integration


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _doc(rng: np.random.Generator, video_id: str, title: str, language: str, version: int = 1) -> IndexDoc:
    return IndexDoc(video_id, version, title, f"about {title}", ["demo"], language, 30.0,
                    datetime(2021, 6, 1, tzinfo=timezone.utc), "", "", {n: _unit(rng) for n in VECTOR_FIELDS},
                    model_version="m1", media_uri=f"/media/{video_id}.mp4",
                    by_version={"m2": {n: _unit(rng) for n in VECTOR_FIELDS}})


@pytest.fixture
def store(stack: object, unique_name: str) -> Iterator[OpenSearchVideoStore]:
    base = load_settings()
    settings: Settings = base.model_copy(update={"indexer": base.indexer.model_copy(
        update={"index_prefix": unique_name, "model_version": "m1", "write_versions": ()})})
    s = OpenSearchVideoStore(settings, timeout_s=10.0, pool=4)
    yield s
    s.drop_alias()
    for version in ("m1", "m2"):
        s.drop(version)
    try:
        s.client.indices.delete_index_template(name=template_name(unique_name))
    except NotFoundError:
        pass
    assert not s.exists("m1") and not s.exists("m2")
    s.close()


def test_store_walkthrough(store: OpenSearchVideoStore) -> None:
    rng = np.random.default_rng(7)
    docs = [_doc(rng, "cat", "kittens playing with yarn", "en"), _doc(rng, "dog", "a dog catches a frisbee", "en"),
            _doc(rng, "chat", "des chatons jouent", "fr")]
    store.ensure("m1", alias=True)
    store.ensure("m2", alias=True)  # the alias exists already: it stays on m1
    assert store.alias_target() == store.physical("m1") and store.exists("m2")

    for version in ("m1", "m2"):
        result = store.write(version, docs)
        assert (result.written, result.stale, result.rejected) == (3, 0, {})
    store.refresh("m1")
    store.refresh("m2")
    assert store.count() == 3 and store.count("m2") == 3
    assert {vid: mv for vid, (_, mv) in store.id_versions("m2").items()} == {"cat": "m2", "dog": "m2", "chat": "m2"}
    assert np.allclose(store.vectors("vec_text", "m2")["dog"], docs[1].by_version["m2"]["text"], atol=1e-6)

    # a tombstone removes the video; an older upsert replayed later cannot resurrect it
    assert store.write("m1", [Tombstone("dog", 5)]).written == 1
    replay = store.write("m1", [docs[1]])
    assert (replay.written, replay.stale) == (0, 1)
    assert store.write("m1", [docs[0]]).written == 1  # the same version again: an idempotent replay
    store.refresh()
    assert store.count() == 2 and set(store.fetch(["cat", "dog", "chat"])) == {"cat", "chat"}
    fetched = store.fetch(["cat"])["cat"]
    assert fetched["media_uri"] == "/media/cat.mp4" and fetched["version"] == 1 and fetched["model_version"] == "m1"

    # searches apply the filter inside the query and read through the alias or a named version
    assert list(store.bm25("kittens", Filters(), 5)) == ["cat"]
    assert store.bm25("kittens", Filters(language="fr"), 5) == {}
    hits = store.knn("vec_fused", docs[2].vectors["fused"], Filters(language="fr"), 5)
    assert list(hits) == ["chat"] and hits.docs["chat"]["language"] == "fr"
    assert list(store.knn("vec_fused", docs[1].by_version["m2"]["fused"], Filters(), 1, version="m2")) == ["dog"]
    many = store.many([("bm25", "frisbee"), ("knn", "vec_text", docs[0].by_version["m2"]["text"])], Filters(), 1, version="m2")
    assert [list(s) for s in many] == [["dog"], ["cat"]]

    # two slices cover every live id exactly once, the same way on every call
    slices = [[d["video_id"] for page in store.scan("m2", slice_id=i, slices=2, batch=1) for d in page] for i in range(2)]
    assert sorted(slices[0] + slices[1]) == ["cat", "chat", "dog"]
    assert slices == [[d["video_id"] for page in store.scan("m2", slice_id=i, slices=2) for d in page] for i in range(2)]

    # NCL keeps each document's version; a video changed since (newer version) is left alone
    assert store.write_ncl({"cat": 0.25, "chat": -0.5}) == 2
    ncl = store.vectors("vec_ncl")
    assert ncl["cat"][-1] == pytest.approx(0.25) and ncl["chat"][-1] == pytest.approx(-0.5)
    assert store.id_versions()["cat"][0] == 1
    read = store.client.mget

    def read_then_update(*args: object, **kwargs: object) -> dict:
        found = read(*args, **kwargs)
        store.write("m1", [_doc(rng, "chat", "des chatons jouent encore", "fr", version=2)])  # lands between read and rewrite
        return found

    store.client.mget = read_then_update  # type: ignore[method-assign]
    try:
        assert store.write_ncl({"cat": 0.75, "chat": 0.75, "dog": 0.75}) == 1  # dog is deleted, chat changed
    finally:
        store.client.mget = read  # type: ignore[method-assign]
    ncl = store.vectors("vec_ncl")
    assert ncl["cat"][-1] == pytest.approx(0.75) and ncl["chat"][-1] == pytest.approx(0.0)
    assert store.fetch(["chat"])["chat"]["version"] == 2 and "dog" not in ncl

    swapped = store.swap("m2")
    assert swapped == {"alias": store.alias, "from": store.physical("m1"), "to": store.physical("m2")}
    assert store.alias_target() == store.physical("m2") and store.count() == 3
    assert store.healthy()

    report = store.install("m2")
    assert report["template"] == "created" and report["index"] == store.physical("m2")
    assert store.install("m2")["template"] == "unchanged"

    store.drop("m1")
    store.drop("m1")  # missing: no error
    assert not store.exists("m1") and store.alias_target() == store.physical("m2")
