"""The `VideoStore` contract (vidsearch.core.store), pinned once and run against every backend on
the real services: OpenSearch, a Milvus server, and an embedded milvus-lite file.

A new backend joins by registering its class in `vidsearch.plugins.backends` and adding its
parameter to `BACKENDS` in this folder's conftest.py; passing this module is what "implements the
contract" means. A test that writes gets a store of its own (`store`: its own prefix, i.e. alias,
and the model versions in conftest.VERSIONS, all dropped afterwards); read-only tests share one
seeded `catalogue` per backend. Writes are followed by `refresh`, never by sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

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
from vidsearch.core.store import Scored, VideoStore, WriteResult
from vidsearch.plugins.backends import open_store

from .conftest import Backend
from .docs import catalogue_docs, day, make_doc, search_docs, unit

pytestmark = pytest.mark.integration

NONE = Filters()
LIGHT_FIELDS = ("title", "language", "duration", "tags")


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def write(store: VideoStore, version: str, ops: Sequence[IndexDoc | Tombstone]) -> WriteResult:
    """One batch, refreshed; nothing may be rejected (every document here is valid)."""
    result = store.write(version, ops)
    assert isinstance(result, WriteResult)
    assert result.rejected == {}, result.rejected
    store.refresh(version)
    return result


def scanned(store: VideoStore, version: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    return [doc for page in store.scan(version, **kwargs) for doc in page]


def live_ids(store: VideoStore, version: str | None = None) -> set[str]:
    ids = [d["video_id"] for d in scanned(store, version)]
    assert len(ids) == len(set(ids)), "scan returned an id twice"
    return set(ids)


def assert_scored(result: Scored, k: int) -> None:
    """A search result: `Scored`, at most k float scores best first, light fields for every hit."""
    assert isinstance(result, Scored)
    assert len(result) <= k
    scores = list(result.values())
    assert all(isinstance(s, float) for s in scores), scores
    assert scores == sorted(scores, reverse=True), "scores are not best first"
    for vid in result:
        assert vid in result.docs, f"no light fields for hit {vid}"
        assert set(LIGHT_FIELDS) <= set(result.docs[vid]), result.docs[vid]


def ranked(result: Scored) -> list[str]:
    return list(result)  # Scored keeps its hits best first


def seed(store: VideoStore, version: str, docs: list[IndexDoc]) -> None:
    store.ensure(version)
    res = write(store, version, docs)
    assert res.written == len(docs) and res.stale == 0


# -- schema and lifecycle ----------------------------------------------------------------------

def test_ensure_alias_physical_exists_drop(store: VideoStore) -> None:
    assert not store.exists("m1") and store.alias_target() is None
    store.ensure("m1")
    store.ensure("m1")  # a second start-up: no error, nothing recreated
    assert store.exists("m1") and not store.exists("m2")
    assert store.alias_target() is None, "ensure without alias=True must not create the alias"
    assert store.physical("m1") == store.physical("m1") != store.physical("m2")

    r = rng(1)
    write(store, "m1", [make_doc(r, "keep")])
    store.ensure("m1", alias=True)  # must not recreate (and so empty) an existing version
    assert store.count("m1") == 1 and live_ids(store, "m1") == {"keep"}
    assert store.alias_target() == store.physical("m1"), "alias=True creates a missing alias"
    assert store.count() == 1, "reads with version=None go through the alias"

    store.ensure("m2", alias=True)  # a second version starting up must not move an existing alias
    assert store.exists("m2") and store.count("m2") == 0
    assert store.alias_target() == store.physical("m1")
    store.ensure("m1", alias=True)
    assert store.alias_target() == store.physical("m1")

    store.drop("m2")
    assert not store.exists("m2") and store.exists("m1")
    store.drop_alias()
    assert store.alias_target() is None
    assert store.exists("m1") and store.count("m1") == 1, "drop_alias must not drop what it pointed at"


# -- document versions ---------------------------------------------------------------------------

def test_version_ordering_stale_idempotent_tombstone(store: VideoStore) -> None:
    r = rng(2)
    store.ensure("m1")
    write(store, "m1", [make_doc(r, "other", 1)])

    res = write(store, "m1", [make_doc(r, "vid", 2, title="second edition")])
    assert (res.written, res.stale) == (1, 0)
    res = write(store, "m1", [make_doc(r, "vid", 1, title="first edition")])
    assert (res.written, res.stale) == (0, 1), "an older version must be skipped and counted stale"
    got = store.fetch(["vid"], version="m1")
    assert got["vid"]["version"] == 2 and got["vid"]["title"] == "second edition"

    res = write(store, "m1", [make_doc(r, "vid", 2, title="second edition replayed")])
    assert (res.written, res.stale) == (1, 0), "the same version again is an idempotent overwrite"
    assert store.fetch(["vid"], version="m1")["vid"]["title"] == "second edition replayed"
    assert store.count("m1") == 2

    res = write(store, "m1", [Tombstone("vid", 3)])
    assert res.stale == 0
    assert store.fetch(["vid"], version="m1") == {}
    assert store.count("m1") == 1 and live_ids(store, "m1") == {"other"}

    res = write(store, "m1", [make_doc(r, "vid", 2, title="zombie")])
    assert (res.written, res.stale) == (0, 1), "an upsert older than the tombstone must stay deleted"
    assert store.fetch(["vid"], version="m1") == {}
    assert store.count("m1") == 1

    res = write(store, "m1", [make_doc(r, "vid", 4, title="back again")])
    assert (res.written, res.stale) == (1, 0), "an upsert newer than the tombstone comes back"
    got = store.fetch(["vid"], version="m1")
    assert got["vid"]["version"] == 4 and got["vid"]["title"] == "back again"
    assert store.count("m1") == 2 and live_ids(store, "m1") == {"other", "vid"}

    # One batch with a new doc, a stale doc and a tombstone: each op is judged on its own.
    res = write(store, "m1", [make_doc(r, "new", 1), make_doc(r, "vid", 3), Tombstone("other", 2)])
    assert res.stale == 1
    assert live_ids(store, "m1") == {"vid", "new"}
    assert store.fetch(["vid"], version="m1")["vid"]["version"] == 4


def test_by_version_vectors_go_to_their_version(store: VideoStore) -> None:
    r = rng(4)
    m2 = {name: unit(r) for name in VECTOR_FIELDS}
    doc = make_doc(r, "twin", 1, model_version="m1", by_version={"m2": m2})
    store.ensure("m1")
    store.ensure("m2")
    assert write(store, "m1", [doc]).written == 1
    assert write(store, "m2", [doc]).written == 1

    v1, v2 = store.vectors("vec_fused", version="m1"), store.vectors("vec_fused", version="m2")
    np.testing.assert_allclose(v1["twin"], doc.vectors["fused"], atol=1e-5)
    np.testing.assert_allclose(v2["twin"], m2["fused"], atol=1e-5)
    assert store.id_versions("m1") == {"twin": (1, "m1")}
    assert store.id_versions("m2") == {"twin": (1, "m2")}
    assert store.fetch(["twin"], version="m2")["twin"]["model_version"] == "m2"
    for name in ("fused", "visual"):
        hit = store.knn(f"vec_{name}", m2[name], NONE, 1, version="m2")
        assert ranked(hit) == ["twin"] and hit["twin"] > 0.99


def test_remove_only_touches_that_version(store: VideoStore) -> None:
    r = rng(5)
    docs = [make_doc(r, f"r{i}") for i in range(4)]
    seed(store, "m1", docs)
    seed(store, "m2", docs)
    store.remove("m2", ["r0", "r2"])
    store.refresh("m2")
    assert live_ids(store, "m2") == {"r1", "r3"} and store.count("m2") == 2
    assert live_ids(store, "m1") == {"r0", "r1", "r2", "r3"} and store.count("m1") == 4
    assert store.fetch(["r0"], version="m2") == {} and "r0" in store.fetch(["r0"], version="m1")


def test_refresh_makes_writes_visible_to_count_and_scan(store: VideoStore) -> None:
    r = rng(6)
    store.ensure("m1")
    assert store.count("m1") == 0 and live_ids(store, "m1") == set()
    store.write("m1", [make_doc(r, f"w{i}") for i in range(3)])
    store.refresh("m1")
    assert store.count("m1") == 3 and live_ids(store, "m1") == {"w0", "w1", "w2"}
    store.write("m1", [Tombstone("w1", 2)])
    store.refresh("m1")
    assert store.count("m1") == 2 and live_ids(store, "m1") == {"w0", "w2"}


# -- filters (on the shared read-only catalogue) --------------------------------------------------

# Which f<i> of docs.filter_docs() each filter matches (the s<i> and "silent" docs match none).
FILTER_CASES = {
    "language": (Filters(language="fr"), {1, 3, 5, 7, 9, 11}),
    "duration": (Filters(duration_min=30, duration_max=80), {3, 4, 5, 6, 7}),
    "published": (Filters(published_from=day(95), published_to=day(215)), {4, 5, 6, 7}),
    "tags": (Filters(tags=["cats"]), {0, 3, 6, 9}),
    "combined": (Filters(language="en", duration_max=60), {0, 2, 4}),
}


@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_filters_apply_inside_bm25_and_knn(catalogue: VideoStore, case: str) -> None:
    """Filters are applied inside the search: with k = the number of matches, every match comes
    back even though the best unfiltered hits (the k-NN query sits next to the non-matching
    documents) do not match: a post-filtered top-k would come back short."""
    filters, match = FILTER_CASES[case]
    want = {f"f{i:02d}" for i in match}
    others = [d.vectors["fused"] for d in catalogue_docs() if d.video_id not in want]
    query = np.mean(others, axis=0)
    query = (query / np.linalg.norm(query)).astype(np.float32)

    lexical = catalogue.bm25("walrus", filters, len(want), version="m1")
    assert_scored(lexical, len(want))
    assert set(lexical) == want

    dense = catalogue.knn("vec_fused", query, filters, len(want), version="m1")
    assert_scored(dense, len(want))
    assert set(dense) == want

    few = catalogue.knn("vec_fused", query, filters, 2, version="m1")
    assert len(few) == 2 and set(few) <= want


# -- search and fetch (on the shared read-only catalogue) -------------------------------------------

def test_bm25_ranks_the_only_title_with_the_word_first(catalogue: VideoStore) -> None:
    hit = catalogue.bm25("pelican", NONE, 5, version="m1")
    assert_scored(hit, 5)
    assert ranked(hit)[0] == "s2"
    assert hit.docs["s2"]["title"] == "the pelican dives"
    assert hit.docs["s2"]["language"] == "de" and hit.docs["s2"]["duration"] == pytest.approx(502.0)
    assert sorted(hit.docs["s2"]["tags"]) == ["birds", "t2"]
    assert catalogue.bm25("xylophonist", NONE, 5, version="m1") == {}


def test_knn_on_own_vectors_ranks_it_first(catalogue: VideoStore) -> None:
    for doc in search_docs():
        for name in VECTOR_FIELDS:
            hit = catalogue.knn(f"vec_{name}", doc.vectors[name], NONE, 3, version="m1")
            assert_scored(hit, 3)
            assert ranked(hit)[0] == doc.video_id, f"vec_{name} of {doc.video_id}: {ranked(hit)}"
    hit = catalogue.knn("vec_fused", search_docs()[3].vectors["fused"], NONE, 3, version="m1")
    assert hit.docs["s3"]["title"] == "mountain trail run"


def test_hits_carry_the_text_lengths_stored_at_ingest(catalogue: VideoStore) -> None:
    """The fusion gate weighs each candidate by how much text it carries: both routes must return
    the lengths computed at ingest, and so must fetch."""
    doc = search_docs()[3]
    assert doc.text_lengths[0] == len("mountain trail run")
    dense = catalogue.knn("vec_fused", doc.vectors["fused"], NONE, 3, version="m1")
    lexical = catalogue.bm25("mountain", NONE, 3, version="m1")
    assert list(dense.docs["s3"]["text_lengths"]) == doc.text_lengths
    assert list(lexical.docs["s3"]["text_lengths"]) == doc.text_lengths
    assert list(catalogue.fetch(["s3"], version="m1")["s3"]["text_lengths"]) == doc.text_lengths


def test_vectors_skip_zero_vectors(catalogue: VideoStore) -> None:
    """A missing modality (no speech) is a zero vector: `vectors()` lists only documents that
    have the field non-zero, and the field stays searchable."""
    everyone = {d.video_id for d in catalogue_docs()}
    speech = catalogue.vectors("vec_speech", version="m1")
    assert set(speech) == everyone - {"silent"}
    assert set(catalogue.vectors("vec_fused", version="m1")) == everyone
    s4 = search_docs()[4]
    np.testing.assert_allclose(speech["s4"], s4.vectors["speech"], atol=1e-5)
    assert ranked(catalogue.knn("vec_speech", s4.vectors["speech"], NONE, 2, version="m1"))[0] == "s4"


def test_fetch_returns_stored_fields_for_found_ids_only(catalogue: VideoStore) -> None:
    got = catalogue.fetch(["s1", "f04", "nope"], version="m1")
    assert set(got) == {"s1", "f04"}
    assert catalogue.fetch(["nope"], version="m1") == {}
    assert catalogue.fetch([], version="m1") == {}
    for vid, stored in got.items():
        doc = next(d for d in catalogue_docs() if d.video_id == vid)
        assert set(STORED_FIELDS) <= set(stored), set(STORED_FIELDS) - set(stored)
        assert stored["video_id"] == vid and stored["version"] == 1 and stored["model_version"] == "m1"
        assert stored["title"] == doc.title and stored["language"] == doc.language
        assert stored["duration"] == pytest.approx(doc.duration) and sorted(stored["tags"]) == sorted(doc.tags)
        assert stored["media_uri"] == doc.media_uri
        if catalogue.keeps_full_documents:
            assert (stored["description"], stored["transcript"], stored["ocr"]) == (
                doc.description, doc.transcript, doc.ocr)


# -- scan, id_versions, count -------------------------------------------------------------------

def test_scan_slices_cover_every_live_id_once(store: VideoStore) -> None:
    r = rng(9)
    docs = [make_doc(r, f"c{i:02d}", version=i + 1) for i in range(14)]
    seed(store, "m1", docs)
    write(store, "m1", [Tombstone("c03", 100), Tombstone("c07", 100)])
    live = {d.video_id for d in docs} - {"c03", "c07"}

    whole = scanned(store, "m1", batch=5)
    assert sorted(d["video_id"] for d in whole) == sorted(live)
    assert all(set(STORED_FIELDS) <= set(d) for d in whole)

    def slices() -> list[list[str]]:
        return [[d["video_id"] for d in scanned(store, "m1", slice_id=i, slices=3, batch=4)] for i in range(3)]

    first, second = slices(), slices()
    flat = [vid for part in first for vid in part]
    assert sorted(flat) == sorted(live), "over all slices each live id exactly once"
    assert [set(p) for p in first] == [set(p) for p in second], "slice membership must be stable"

    assert store.id_versions("m1") == {d.video_id: (d.version, "m1") for d in docs if d.video_id in live}
    assert store.count("m1") == len(live)


# -- NCL -----------------------------------------------------------------------------------------

def test_write_ncl_sets_bias_and_respects_newer_writes(store: VideoStore) -> None:
    r = rng(10)
    docs = [make_doc(r, f"n{i}", version=1) for i in range(5)]
    seed(store, "m1", docs)
    fused = store.vectors("vec_fused", version="m1")
    assert set(fused) == {d.video_id for d in docs}

    biases = {"n0": 0.3, "n1": 0.9, "n2": 0.6}
    assert store.write_ncl(biases, version="m1") == 3
    store.refresh("m1")
    query = np.append(unit(r), np.float32(1.0)).astype(np.float32)
    hit = store.knn("vec_ncl", query, NONE, 3, version="m1")
    assert ranked(hit) == ["n1", "n2", "n0"], "[q; 1] ranks by the bias"
    ncl = store.vectors("vec_ncl", version="m1")
    assert ncl["n1"].shape == (DIM + 1,)
    assert ncl["n1"][-1] == pytest.approx(0.9, abs=1e-5)
    np.testing.assert_allclose(ncl["n1"][:DIM], fused["n1"], atol=1e-5)

    # A video re-written (newer version, new vector) or deleted after `vectors()` read it.
    newer = make_doc(r, "n3", version=2, title="rewritten after the read")
    write(store, "m1", [newer, Tombstone("n4", 2)])
    updated = store.write_ncl({"n3": 5.0, "n4": 5.0, "n0": 0.1}, version="m1")
    assert 1 <= updated <= 2
    store.refresh("m1")
    assert store.fetch(["n4"], version="m1") == {}, "write_ncl must not resurrect a deleted video"
    got = store.fetch(["n3"], version="m1")["n3"]
    assert (got["version"], got["title"]) == (2, "rewritten after the read")
    np.testing.assert_allclose(store.vectors("vec_fused", version="m1")["n3"], newer.vectors["fused"], atol=1e-5)
    ncl = store.vectors("vec_ncl", version="m1")
    np.testing.assert_allclose(ncl["n3"][:DIM], newer.vectors["fused"], atol=1e-5)
    assert ncl["n0"][-1] == pytest.approx(0.1, abs=1e-5)
    assert "n4" not in ncl and "n4" not in store.vectors("vec_fused", version="m1")
    assert store.count("m1") == 4


# -- alias ---------------------------------------------------------------------------------------

def test_alias_swap_under_concurrent_readers(store: VideoStore) -> None:
    r = rng(11)
    base = unit(r)
    a = [make_doc(r, f"a{i}", title=f"heron {i}", fused=unit(r, base, 0.3)) for i in range(20)]
    b = [make_doc(r, f"b{i}", title=f"heron {i}", fused=unit(r, base, 0.3)) for i in range(20)]
    store.ensure("m1", alias=True)
    seed(store, "m1", a)
    seed(store, "m2", b)
    phys_a, phys_b = store.physical("m1"), store.physical("m2")
    assert store.alias_target() == phys_a
    assert set(store.bm25("heron", NONE, 50)) == {d.video_id for d in a}
    assert store.count() == 20

    stop = threading.Event()
    seen: list[str] = []
    failures: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                for hits in (store.bm25("heron", NONE, 10), store.knn("vec_fused", base, NONE, 10)):
                    sides = {vid[0] for vid in hits}
                    if len(sides) != 1:
                        failures.append(f"mixed or empty result: {sorted(hits)}")
                    seen.extend(sides)
            except Exception as exc:  # noqa: BLE001 - any error a reader sees is the failure
                failures.append(repr(exc))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        expected = [("m2", phys_a, phys_b), ("m1", phys_b, phys_a)] * 2
        for version, before, after in expected:
            time.sleep(0.3)
            report = store.swap(version)
            assert report == {"alias": store.alias, "from": before, "to": after}
            assert store.alias_target() == after
        store.swap("m2")
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert not failures, failures[:5]
    assert {"a", "b"} <= set(seen), "the reader never saw one of the versions"

    assert store.alias_target() == phys_b
    assert set(store.bm25("heron", NONE, 50)) == {d.video_id for d in b}
    assert set(store.knn("vec_fused", base, NONE, 50)) == {d.video_id for d in b}
    assert set(store.fetch(["a0", "b0"])) == {"b0"}
    assert live_ids(store) == {d.video_id for d in b} and store.count() == 20
    assert set(store.id_versions()) == {d.video_id for d in b}


# -- health --------------------------------------------------------------------------------------

def test_healthy_against_the_service(catalogue: VideoStore) -> None:
    assert catalogue.healthy() is True


def test_unhealthy_store_on_a_dead_port_does_not_raise(backend: Backend, store_settings: Settings) -> None:
    """A store must be constructible while its service is down (health probes, fallback routing
    open it before knowing), and `healthy()` then answers False, quickly, without raising."""
    dead = open_store(backend.name, backend.dead(store_settings), timeout_s=2.0)
    try:
        started = time.monotonic()
        assert dead.healthy() is False
        assert time.monotonic() - started < 20
    finally:
        dead.close()
