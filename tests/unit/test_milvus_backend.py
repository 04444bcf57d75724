"""The Milvus backend's pure logic: filter expressions (values from untrusted clients must never
break out of their literal), the `meta` JSON clipping of `to_row`, stored-document conversion,
slice membership, and the write path's per-row isolation after a refused batch."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from pymilvus.exceptions import MilvusException

from vidsearch.core.documents import (
    DIM,
    STORED_FIELDS,
    VECTOR_FIELDS,
    IndexDoc,
    Tombstone,
)
from vidsearch.core.errors import StoreUnavailableError
from vidsearch.core.filters import Filters
from vidsearch.core.settings import IndexerSettings, Settings
from vidsearch.plugins.milvus.filters import quote, quote_list, to_expr
from vidsearch.plugins.milvus.store import MilvusVideoStore, in_slice, stored_document
from vidsearch.plugins.milvus.videos import (
    MAX_JSON_BYTES,
    META_DROP_ORDER,
    to_row,
    tombstone_name,
)

pytestmark = pytest.mark.unit


def _unquote(literal: str) -> str:
    """What Milvus's parser reads from `quote`'s output: a JSON string literal (the escapes
    `quote` uses are a subset of JSON's), raw control characters allowed."""
    return json.loads(literal, strict=False)


# -- filters ---------------------------------------------------------------------------------

def test_empty_filters_make_no_expression() -> None:
    assert to_expr(Filters()) == "" and to_expr(None) == ""


def test_every_filter_becomes_one_clause() -> None:
    f = Filters(language="en", duration_min=1.5, duration_max=60, tags=["a", "b"],
                published_from=datetime(2024, 1, 1, tzinfo=UTC),
                published_to=datetime(2024, 1, 2, tzinfo=UTC))
    assert to_expr(f) == ('language == "en" and duration >= 1.5 and (duration <= 60.0 and duration >= 0) and '
                          'published_at >= 1704067200000 and (published_at <= 1704153600000 and published_at >= 0) '
                          'and ARRAY_CONTAINS_ANY(tags, ["a", "b"])')


@pytest.mark.parametrize("value", [
    'en" or language != "',  # closes the literal and adds a clause
    'x\\" or true or \\"',  # escaped escape
    "\\",  # a lone backslash would escape the closing quote
    'a"b\\c\nd\re\tf',
    "caf\u00e9 \U0001F600",  # non-ASCII stays raw: Milvus knows no \\uXXXX escape
    "nul\x00 bell\x07 bs\x08 ff\x0c",  # control characters Milvus accepts raw (it knows no \\b, \\f)
    "') or (1 == 1",
])
def test_quote_cannot_be_broken_out_of(value: str) -> None:
    literal = quote(value)
    assert literal[0] == literal[-1] == '"'
    assert _unquote(literal) == value
    assert "\\u" not in literal.replace("\\\\", "")  # never a \\uXXXX escape
    # every quote inside the literal is escaped: the literal ends only at its last character
    body = literal[1:-1]
    i = 0
    while i < len(body):
        assert body[i] != '"', f"unescaped quote in {literal!r}"
        i += 2 if body[i] == "\\" else 1
    assert i == len(body), "the literal ends inside an escape"


def test_injection_attempts_stay_values() -> None:
    f = Filters(language='e" or id != "', tags=['x"]) or id != "', "\\"])  # language: at most 16 chars
    expr = to_expr(f)
    lang = expr.split(" and ")[0]
    assert lang == 'language == "e\\" or id != \\""'
    assert expr.endswith('ARRAY_CONTAINS_ANY(tags, ["x\\"]) or id != \\"", "\\\\"])')
    assert json.loads(quote_list(['x"]) or id != "', "\\"])) == ['x"]) or id != "', "\\"]


# -- rows --------------------------------------------------------------------------------------

def _vectors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    out = {}
    for f in VECTOR_FIELDS:
        v = rng.standard_normal(DIM).astype(np.float32)
        out[f] = v / np.linalg.norm(v)
    return out


def _doc(vid: str = "v1", **kw: Any) -> IndexDoc:
    base: dict[str, Any] = {
        "video_id": vid, "version": 3, "title": "t", "description": "a description", "tags": ["x"], "language": "en",
        "duration": 2.5, "published_at": datetime(2024, 1, 1, tzinfo=UTC), "transcript": "", "ocr": "",
        "vectors": _vectors(), "model_version": "m1", "media_uri": "file:///x.mp4",
        "keyframes": [{"t": 0.5, "vector": [0.123456] * 8}], "segments": [{"start": 0, "end": 1, "text": "s"}],
        "extra": {"e": 1},
    }
    base.update(kw)
    return IndexDoc(**base)


def test_row_meta_keeps_the_description_and_everything_when_small() -> None:
    meta = json.loads(to_row(_doc())["meta"])
    assert meta["description"] == "a description"
    assert meta["keyframes"] == [{"t": 0.5, "vector": [0.1235] * 8}] and meta["extra"] == {"e": 1}
    assert not any(k.endswith("_truncated") for k in meta)


@pytest.mark.parametrize("oversized, dropped", [
    ("extra", ["extra"]),
    ("keyframes", ["extra", "keyframes"]),
    ("segments", ["extra", "keyframes", "segments"]),
    ("description", ["extra", "keyframes", "segments", "description"]),
])
def test_oversized_meta_drops_in_order_with_description_last(oversized: str, dropped: list[str]) -> None:
    big = "y" * (MAX_JSON_BYTES + 10)
    kw: dict[str, Any] = {
        "extra": {"e": big},
        "keyframes": [{"t": float(i), "vector": [0.5] * DIM} for i in range(40)],
        "segments": [{"start": 0, "end": 1, "text": big}],
        "description": big,
    }
    kept = dict(list(kw.items())[list(kw).index(oversized):])  # the oversized one and those after it
    small = {"extra": {}, "keyframes": [], "segments": [], "description": "d"}
    doc = _doc(**{**small, **{k: v for k, v in kept.items() if k == oversized}})
    meta = json.loads(to_row(doc)["meta"])
    assert META_DROP_ORDER == ("extra", "keyframes", "segments", "description")
    for key in META_DROP_ORDER:
        assert (key in meta) == (key not in dropped)
        assert meta.get(f"{key}_truncated", False) == (key in dropped)
    assert meta["model_version"] == "m1" and meta["media_uri"] == "file:///x.mp4"


def test_stored_document_round_trips_a_row() -> None:
    row = to_row(_doc())
    row.pop("sparse", None)
    row["meta"] = json.loads(row["meta"])  # sent as a JSON string, Milvus returns the object
    out = stored_document(row)
    assert tuple(out) == STORED_FIELDS
    assert out["description"] == "a description" and out["published_at"] == "2024-01-01T00:00:00+00:00"
    assert (out["duration"], out["language"], out["transcript"], out["ocr"]) == (2.5, "en", None, None)
    empty = stored_document({**row, "duration": -1.0, "published_at": -1, "language": "", "meta": {"description_truncated": True}})
    assert (empty["duration"], empty["published_at"], empty["language"], empty["description"]) == (None, None, None, None)
    assert (empty["keyframes"], empty["segments"], empty["extra"]) == ([], [], {})


def test_a_float32_duration_reads_back_as_written() -> None:
    row = to_row(_doc())
    out = stored_document({**row, "meta": json.loads(row["meta"]), "duration": float(np.float32(12.3))})
    assert out["duration"] == 12.3


def test_slices_partition_ids_stably() -> None:
    ids = [f"video-{i}" for i in range(200)]
    owners = [[s for s in range(3) if in_slice(vid, s, 3)] for vid in ids]
    assert all(len(o) == 1 for o in owners)
    assert {o[0] for o in owners} == {0, 1, 2}
    assert in_slice("video-7", 0, 1)


# -- writes: isolation after a refused batch ---------------------------------------------------

class RefusingClient:
    """Refuses any upsert of more than one row (a non-transient refusal) and any row whose id is
    in `bad`, and records what each collection got."""

    def __init__(self, bad: set[str] = frozenset(), healthy: bool = True) -> None:  # type: ignore[assignment]
        self.bad, self.is_healthy = bad, healthy
        self.upserts: dict[str, list[dict[str, Any]]] = {}
        self.deleted: list[str] = []

    def query(self, name: str, filter: str, output_fields: list[str]) -> list[dict[str, Any]]:
        return []

    def upsert(self, name: str, rows: list[dict[str, Any]]) -> None:
        if len(rows) > 1 or rows[0]["id"] in self.bad:
            raise MilvusException(message="field exceeds max length")  # not a transient hint
        self.upserts.setdefault(name, []).extend(rows)

    def delete(self, name: str, ids: list[str]) -> None:
        self.deleted.extend(ids)

    def list_collections(self) -> list[str]:
        if not self.is_healthy:
            raise MilvusException(message="something is wrong")
        return []

    def load_collection(self, name: str) -> None:
        pass

    def close(self) -> None:
        pass


def _store(client: RefusingClient) -> MilvusVideoStore:
    settings = Settings(indexer=IndexerSettings(collection_prefix="t_unit", model_version="m1", retry_attempts=1))
    store = MilvusVideoStore(settings, client=client)
    store._ensured.add(store.physical("m1"))  # the fake needs no schema
    return store


def test_a_refused_batch_rejects_only_the_bad_rows() -> None:
    client = RefusingClient(bad={"bad"})
    store = _store(client)
    result = store.write("m1", [_doc("a"), _doc("bad"), Tombstone("gone", 4)])
    assert set(result.rejected) == {"bad"} and result.written == 2
    assert [r["id"] for r in client.upserts[store.physical("m1")]] == ["a"]
    assert client.upserts[tombstone_name(store.physical("m1"))] == [{"id": "gone", "version": 4, "v": [1.0, 0.0]}]


def test_a_refusing_unhealthy_store_pauses_instead_of_rejecting() -> None:
    store = _store(RefusingClient(bad={"bad"}, healthy=False))
    with pytest.raises(StoreUnavailableError):
        store.write("m1", [_doc("a"), _doc("bad")])


def test_every_row_refused_pauses_instead_of_dead_lettering_the_batch() -> None:
    store = _store(RefusingClient(bad={"a", "b"}))
    with pytest.raises(StoreUnavailableError):
        store.write("m1", [_doc("a"), _doc("b")])


def test_a_document_that_cannot_become_a_row_is_rejected_alone() -> None:
    client = RefusingClient()
    store = _store(client)
    broken = _doc("broken", vectors={"fused": np.zeros(DIM, np.float32)})  # the other modalities are missing
    result = store.write("m1", [broken, _doc("ok")])
    assert list(result.rejected) == ["broken"] and "KeyError" in result.rejected["broken"]
    assert result.written == 1 and [r["id"] for r in client.upserts[store.physical("m1")]] == ["ok"]


def test_each_version_gets_its_own_vectors() -> None:
    client = RefusingClient()
    store = _store(client)
    other = {f: np.full(DIM, 0.5, np.float32) for f in VECTOR_FIELDS}
    store._ensured.add(store.physical("m2"))
    store.write("m2", [_doc("a", by_version={"m2": other})])
    row = client.upserts[store.physical("m2")][0]
    assert row["vec_fused"][0] == 0.5 and json.loads(row["meta"])["model_version"] == "m2"
