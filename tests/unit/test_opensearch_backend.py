"""Pure logic of the OpenSearch backend: `Filters` -> clauses, `_bulk` planning and item
outcomes, query bodies, stored-document shape. The engine itself is exercised by the conformance
suite and `tests/integration/test_opensearch_backend_smoke.py`."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest

from vidsearch.core.documents import DIM, STORED_FIELDS, VECTOR_FIELDS, IndexDoc, Tombstone
from vidsearch.core.filters import Filters
from vidsearch.core.settings import Settings
from vidsearch.plugins.opensearch.bulk import bulk_units, item_outcome, serializer_of
from vidsearch.plugins.opensearch.filters import clauses, knn_filter
from vidsearch.plugins.opensearch.search import bm25_body, knn_body, query_body, scored, stored
from vidsearch.plugins.opensearch.store import OpenSearchVideoStore, plan_bulk, split_bulk

pytestmark = pytest.mark.unit


def _doc(video_id: str, version: int = 1, description: str = "", by_version: dict | None = None) -> IndexDoc:
    rng = np.random.default_rng(abs(hash(video_id)) % 2**32)
    vectors = {name: rng.standard_normal(DIM).astype(np.float32) for name in VECTOR_FIELDS}
    return IndexDoc(video_id, version, f"title {video_id}", description, ["a"], "en", 10.0,
                    datetime(2021, 1, 1, tzinfo=timezone.utc), "", "", vectors, model_version="m1",
                    by_version=by_version or {})


# ---------------------------------------------------------------- filters

def test_empty_filters_add_no_clause() -> None:
    assert clauses(Filters()) == [] and knn_filter(Filters()) is None


def test_every_filter_becomes_one_clause() -> None:
    f = Filters(language="fr", duration_min=5, duration_max=60.5, tags=["cat", "dog"],
                published_from=datetime(2020, 1, 1, tzinfo=timezone.utc),
                published_to=datetime(2020, 12, 31, tzinfo=timezone.utc))
    assert clauses(f) == [
        {"term": {"language": "fr"}},
        {"range": {"duration": {"gte": 5, "lte": 60.5}}},
        {"range": {"published_at": {"gte": "2020-01-01T00:00:00+00:00", "lte": "2020-12-31T00:00:00+00:00"}}},
        {"terms": {"tags": ["cat", "dog"]}},
    ]
    assert knn_filter(f) == {"bool": {"filter": clauses(f)}}


def test_open_ranges_keep_only_their_bound() -> None:
    assert clauses(Filters(duration_min=0)) == [{"range": {"duration": {"gte": 0}}}]  # 0 is a bound, not "unset"
    upto = datetime(2022, 5, 1, tzinfo=timezone.utc)
    assert clauses(Filters(published_to=upto)) == [{"range": {"published_at": {"lte": upto.isoformat()}}}]


def test_hostile_values_stay_json_values() -> None:
    f = Filters(language='en"}}', tags=['x"]}, {"match_all'])
    body = json.loads(json.dumps(bm25_body("q", f, 3)))
    assert body["query"]["bool"]["filter"] == [{"term": {"language": 'en"}}'}}, {"terms": {"tags": ['x"]}, {"match_all']}}]


# ---------------------------------------------------------------- query bodies

def test_knn_filter_goes_inside_the_knn_clause() -> None:
    vec = np.arange(4, dtype=np.float64)
    body = knn_body("vec_fused", vec, Filters(language="en"), 7)
    clause = body["query"]["knn"]["vec_fused"]
    assert body["size"] == 7 and clause["k"] == 7 and clause["vector"] == [0.0, 1.0, 2.0, 3.0]
    assert clause["filter"] == {"bool": {"filter": [{"term": {"language": "en"}}]}}
    assert "filter" not in knn_body("vec_fused", vec, Filters(), 7)["query"]["knn"]["vec_fused"]


def test_query_tuples_map_to_bodies_and_unknown_ones_fail() -> None:
    assert query_body(("bm25", "cats"), Filters(), 5) == bm25_body("cats", Filters(), 5)
    vec = np.ones(3, np.float32)
    assert query_body(("knn", "vec_text", vec), Filters(), 5) == knn_body("vec_text", vec, Filters(), 5)
    with pytest.raises(ValueError, match="unknown query"):
        query_body(("hybrid", "cats"), Filters(), 5)
    with pytest.raises(ValueError):
        query_body(("knn", vec), Filters(), 5)


def test_scored_keeps_order_scores_and_light_docs() -> None:
    resp = {"hits": {"hits": [{"_id": "b", "_score": 2.5, "_source": {"title": "B"}}, {"_id": "a", "_score": 1}]}}
    s = scored(resp)
    assert list(s) == ["b", "a"] and s["b"] == 2.5 and isinstance(s["a"], float)
    assert s.docs == {"b": {"title": "B"}, "a": {}}


def test_stored_has_every_field_with_empty_defaults() -> None:
    out = stored({"title": "t", "version": 3, "vec_fused": [1.0]}, "v1")
    assert tuple(out) == STORED_FIELDS
    assert out["video_id"] == "v1" and out["version"] == 3 and out["transcript"] is None
    assert out["tags"] == [] and out["keyframes"] == [] and out["extra"] == {}


# ---------------------------------------------------------------- bulk planning

def test_plan_bulk_is_greedy_ordered_and_refuses_an_oversized_item() -> None:
    assert plan_bulk([42, 422, 28, 222, 222, 24], 450) == [(0, 1), (1, 3), (3, 5), (5, 6)]
    assert plan_bulk([5, 5, 5], 10) == [(0, 2), (2, 3)] and plan_bulk([], 10) == []
    with pytest.raises(ValueError, match="item 1 of 11 bytes"):
        plan_bulk([3, 11, 2], 10)
    items = ['{"a":"%s"}\n' % ("é" * n) for n in (10, 200, 3)]
    bodies = split_bulk(items, 430)  # 29, 409 and 15 bytes
    assert "".join(bodies) == "".join(items) and [len(b.encode()) for b in bodies] == [29, 424]


def test_bulk_units_version_each_op_and_use_that_versions_vectors() -> None:
    other = {name: np.full(DIM, 0.5, np.float32) for name in VECTOR_FIELDS}
    ops = [_doc("a", 3, by_version={"m2": other}), Tombstone("b", 9)]
    units, refused = bulk_units(serializer_of(object()), "p-m2", "m2", ops, 10**6)
    assert not refused
    (_, unit_a), (_, unit_b) = units
    action, source = (json.loads(line) for line in unit_a.decode().splitlines())
    assert action == {"index": {"_index": "p-m2", "_id": "a", "version": 3, "version_type": "external_gte"}}
    assert source["model_version"] == "m2" and source["vec_text"] == [0.5] * DIM
    assert len(source["vec_ncl"]) == DIM + 1
    assert [json.loads(line) for line in unit_b.decode().splitlines()] == [
        {"delete": {"_index": "p-m2", "_id": "b", "version": 9, "version_type": "external_gte"}}]


def test_bulk_units_refuse_what_is_over_budget_or_unserialisable() -> None:
    bad = _doc("bad")
    bad.extra = {"x": object()}
    units, refused = bulk_units(serializer_of(object()), "p", "m1", [_doc("big", description="w" * 200_000), bad, _doc("ok")],
                                150_000)  # a document's vectors alone are ~60 kB
    assert [op.video_id for op, _ in units] == ["ok"]
    assert "exceeds opensearch.bulk_max_bytes=150000" in refused["big"] and "cannot be serialised" in refused["bad"]


@pytest.mark.parametrize(("action", "info", "outcome"), [
    ("index", {"status": 201}, "written"),
    ("index", {"status": 200}, "written"),
    ("delete", {"status": 404, "result": "not_found"}, "written"),
    ("delete", {"status": 404, "error": {"type": "index_not_found_exception"}}, "retry"),
    ("index", {"status": 409, "error": {"type": "version_conflict_engine_exception"}}, "stale"),
    ("index", {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad"}}, "rejected"),
    ("index", {"status": 400, "error": {"type": "cluster_block_exception"}}, "retry"),
    ("index", {"status": 429, "error": {"type": "es_rejected_execution_exception"}}, "retry"),
    ("index", {}, "retry"),
])
def test_item_outcomes(action: str, info: dict[str, Any], outcome: str) -> None:
    assert item_outcome(action, info)[0] == outcome


class _FakeBulkClient:
    """Records each `_bulk` body; answers per item from `status` (a fake for the pure split logic)."""

    def __init__(self, status: dict[str, list[int]] | None = None) -> None:
        self.bodies: list[bytes] = []
        self.status = status or {}

    def bulk(self, body: bytes, request_timeout: float, wait_for_active_shards: str) -> dict[str, Any]:
        assert wait_for_active_shards == "1"  # opensearch.wait_for_active_shards, passed on every write
        self.bodies.append(body)
        items = []
        for line in (json.loads(x) for x in body.decode().splitlines()):
            action = next(iter(line))
            if action in ("index", "delete"):
                vid = line[action]["_id"]
                codes = self.status.get(vid) or [201]
                status = codes.pop(0) if len(codes) > 1 else codes[0]
                error = {"type": "mapper_parsing_exception"} if status == 400 else {"type": "x"}
                items.append({action: {"_id": vid, "status": status, **({"error": error} if status >= 300 else {})}})
        return {"items": items}


def _store(client: _FakeBulkClient, **indexer: Any) -> OpenSearchVideoStore:
    settings = Settings(opensearch={"bulk_max_bytes": 64 * 1024}, indexer={"retry_max_wait_s": 0.01, **indexer})
    store = OpenSearchVideoStore(settings, client=client)  # type: ignore[arg-type]
    store._ensured = {store.physical("m1")}  # no real index to create here
    return store


def test_write_splits_by_budget_and_sorts_outcomes() -> None:
    client = _FakeBulkClient({"stale": [409], "bad": [400], "flaky": [503, 201]})
    store = _store(client)
    ops = [_doc(f"v{i}", description="word " * 1500) for i in range(12)]
    ops += [_doc("stale"), _doc("bad"), _doc("flaky"), _doc("huge", description="é" * 40_000)]
    result = store.write("m1", ops)
    assert len(client.bodies) > 2 and all(len(b) <= 64 * 1024 for b in client.bodies)
    assert result.written == 13 and result.stale == 1
    assert set(result.rejected) == {"bad", "huge"}
    resent = [json.loads(line)["index"]["_id"] for line in client.bodies[-1].decode().splitlines() if '"index"' in line[:10]]
    assert resent == ["flaky"]  # only the transient item is sent again


def test_write_gives_up_with_store_unavailable() -> None:
    from vidsearch.core.errors import StoreUnavailableError

    client = _FakeBulkClient({"down": [503]})
    with pytest.raises(StoreUnavailableError, match="no acknowledgement after 2 attempts"):
        _store(client, retry_attempts=2).write("m1", [_doc("down")])
    assert len(client.bodies) == 2
