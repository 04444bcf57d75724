"""Milvus against the real milvus-lite: the same code runs on the server (`http://...`) and on an
embedded `.db` file, chosen by URI alone, as `make_client` promises."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pymilvus import AnnSearchRequest, DataType, Function, FunctionType, MilvusClient, RRFRanker

from tests.cleanup import fresh_name
from vidsearch.core.settings import MilvusSettings, Settings
from vidsearch.plugins.milvus.client import make_client

pytestmark = pytest.mark.integration

DIM = 8


def _milvus_settings(settings: Settings, mode: str, tmp_path: Path) -> MilvusSettings:
    """Server mode uses the configured URI; embedded mode swaps only the URI for a local file."""
    base = settings.milvus
    if mode == "server":
        return base
    return base.model_copy(update={"uri": str(tmp_path / "embedded.db")})


@pytest.fixture(params=["server", "embedded"])
def client(request: pytest.FixtureRequest, stack: object, settings: Settings, tmp_path: Path) -> Iterator[MilvusClient]:
    """One client per URI kind, closed after the test (the session stack runs the server)."""
    c = make_client(_milvus_settings(settings, request.param, tmp_path))
    try:
        yield c
    finally:
        c.close()


def _name(prefix: str = "c") -> str:
    return fresh_name(prefix)  # this session's token: a collection a test leaves is found at the end


def _vec(**parts: float) -> list[float]:
    """A hand-made DIM-d vector from {"e<i>": value} components, so rankings are predictable."""
    v = [0.0] * DIM
    for key, value in parts.items():
        v[int(key[1:])] = value
    return v


# Queries: visual = e0, audio = e7, text = "red fox jumping". v3 is first for visual and text;
# v5 is a decoy: first for audio and second for visual, so a fusion of the two dense fields alone
# picks v5, and only adding BM25 (where v5 scores nothing) makes v3 win.
Q_VISUAL, Q_AUDIO, Q_TEXT = _vec(e0=1.0), _vec(e7=1.0), "red fox jumping"
DOCS: list[dict[str, object]] = [
    {"id": "v1", "text": "a calm lake at dawn", "visual": _vec(e1=1.0), "audio": _vec(e1=1.0)},
    {"id": "v2", "text": "city traffic at night", "visual": _vec(e0=0.5, e3=0.866), "audio": _vec(e2=1.0)},
    {"id": "v3", "text": "a red fox jumping over fresh snow", "visual": _vec(e0=1.0, e2=0.1),
     "audio": _vec(e7=0.7, e5=0.714)},
    {"id": "v4", "text": "a red kite over the hills", "visual": _vec(e4=1.0), "audio": _vec(e3=1.0)},
    {"id": "v5", "text": "a sailing boat on the open sea", "visual": _vec(e0=0.8, e1=0.6),
     "audio": _vec(e7=1.0)},
    {"id": "v6", "text": "quiet library reading room", "visual": _vec(e5=1.0),
     "audio": _vec(e7=0.9, e6=0.436)},
]
IDS = {str(d["id"]) for d in DOCS}


def _create_multimodal(client: MilvusClient, name: str) -> None:
    """id + analyzed text -> BM25 sparse (server-side Function) + two dense COSINE fields."""
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("text", DataType.VARCHAR, max_length=1024, enable_analyzer=True)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("visual", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("audio", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_function(
        Function(name="text_bm25", function_type=FunctionType.BM25,
                 input_field_names=["text"], output_field_names=["sparse"])
    )
    index = MilvusClient.prepare_index_params()
    index.add_index("visual", index_type="HNSW", metric_type="COSINE", params={"M": 8, "efConstruction": 64})
    index.add_index("audio", index_type="FLAT", metric_type="COSINE")
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")


def _ids(hits: list[dict]) -> list[str]:
    return [str(h["id"]) for h in hits]


def test_hybrid_rrf_and_bm25_full_text(client: MilvusClient) -> None:
    """RRF fuses dense + BM25 results; full-text search ranks by BM25 (scores may be negative)."""
    name = _name()
    _create_multimodal(client, name)
    try:
        assert client.insert(name, DOCS)["insert_count"] == len(DOCS)

        def dense(field: str, vec: list[float]) -> AnnSearchRequest:
            return AnnSearchRequest([vec], field, {"metric_type": "COSINE"}, limit=len(DOCS))

        bm25 = AnnSearchRequest([Q_TEXT], "sparse", {"metric_type": "BM25"}, limit=len(DOCS))

        # Single-field rankings the fixture data was built for.
        visual = client.search(name, data=[Q_VISUAL], anns_field="visual", limit=3, output_fields=["id"])
        assert _ids(visual[0]) == ["v3", "v5", "v2"]
        audio = client.search(name, data=[Q_AUDIO], anns_field="audio", limit=3, output_fields=["id"])
        assert _ids(audio[0]) == ["v5", "v6", "v3"]

        # Full-text: only documents sharing a query term come back, the best match first.
        text = client.search(name, data=[Q_TEXT], anns_field="sparse", limit=len(DOCS),
                             search_params={"metric_type": "BM25"}, output_fields=["id", "text"])
        assert _ids(text[0]) == ["v3", "v4"]
        assert "fox" in str(text[0][0]["entity"]["text"])

        # Dense-only fusion: the decoy wins (proves the ranker really fuses both lists).
        two = client.hybrid_search(name, [dense("visual", Q_VISUAL), dense("audio", Q_AUDIO)],
                                   RRFRanker(), limit=len(DOCS), output_fields=["id"])
        assert _ids(two[0])[0] == "v5"

        # Dense + BM25 fusion: the text evidence lifts v3 to the top.
        three = client.hybrid_search(
            name, [dense("visual", Q_VISUAL), dense("audio", Q_AUDIO), bm25],
            RRFRanker(), limit=len(DOCS), output_fields=["id", "text"],
        )
        ids = _ids(three[0])
        assert ids[0] == "v3"
        assert set(ids) <= IDS and len(ids) == len(set(ids)) == len(DOCS)
        scores = [float(h["distance"]) for h in three[0]]
        assert scores == sorted(scores, reverse=True)
    finally:
        client.drop_collection(name)
    assert not client.has_collection(name)


def _create_single(client: MilvusClient, name: str, doc_id: str, label: str) -> None:
    """A tiny collection holding one distinguishable document."""
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("label", DataType.VARCHAR, max_length=64)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    index = MilvusClient.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="COSINE")
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
    client.insert(name, [{"id": doc_id, "label": label, "vec": _vec(e0=1.0)}])


def test_alias_switch(client: MilvusClient) -> None:
    """Readers address an alias; `alter_alias` repoints it atomically (blue/green reindexing)."""
    coll_a, coll_b, alias = _name("a"), _name("b"), _name("x")
    _create_single(client, coll_a, "doc-a", "from A")
    _create_single(client, coll_b, "doc-b", "from B")
    aliased = False
    try:
        client.create_alias(coll_a, alias)
        aliased = True
        assert client.describe_alias(alias)["collection_name"] == coll_a
        rows = client.query(alias, filter='id != ""', output_fields=["id", "label"])
        assert [(r["id"], r["label"]) for r in rows] == [("doc-a", "from A")]

        client.alter_alias(coll_b, alias)
        assert client.describe_alias(alias)["collection_name"] == coll_b
        rows = client.query(alias, filter='id != ""', output_fields=["id", "label"])
        assert [(r["id"], r["label"]) for r in rows] == [("doc-b", "from B")]
        hits = client.search(alias, data=[_vec(e0=1.0)], anns_field="vec", limit=5, output_fields=["id"])
        assert _ids(hits[0]) == ["doc-b"]
    finally:
        if aliased:
            client.drop_alias(alias)
        client.drop_collection(coll_a)
        client.drop_collection(coll_b)
    assert alias not in client.list_aliases()["aliases"]
    assert not client.has_collection(coll_a) and not client.has_collection(coll_b)
