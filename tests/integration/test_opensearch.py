"""OpenSearch with k-NN (lucene HNSW, cosine): BM25, k-NN, filtered k-NN, atomic alias move."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opensearchpy import OpenSearch

from vidsearch.core.settings import Settings
from vidsearch.plugins.opensearch.client import make_client

pytestmark = pytest.mark.integration

DOCS = {
    "cat-en": ("kittens playing with yarn", "en", [1.0, 0.1, 0.0, 0.0]),
    "dog-en": ("a dog catches a frisbee", "en", [0.0, 1.0, 0.1, 0.0]),
    "cat-fr": ("des chatons jouent", "fr", [0.9, 0.2, 0.0, 0.1]),
    "car-fr": ("une voiture rouge", "fr", [0.0, 0.0, 1.0, 0.2]),
    "sea-en": ("waves on the sea at sunset", "en", [0.0, 0.1, 0.2, 1.0]),
}
MAPPING = {
    "settings": {"index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}},
    "mappings": {
        "properties": {
            "title": {"type": "text"},
            "lang": {"type": "keyword"},
            "vec": {
                "type": "knn_vector",
                "dimension": 4,
                "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"},
            },
        }
    },
}


@pytest.fixture
def client(stack: object, settings: Settings) -> OpenSearch:
    return make_client(settings.opensearch)


@pytest.fixture
def index(client: OpenSearch, unique_name: str) -> Iterator[str]:
    client.indices.create(index=unique_name, body=MAPPING)
    for doc_id, (title, lang, vec) in DOCS.items():
        client.index(index=unique_name, id=doc_id, body={"title": title, "lang": lang, "vec": vec})
    client.indices.refresh(index=unique_name)
    yield unique_name
    client.indices.delete(index=unique_name, ignore_unavailable=True)


def _ids(resp: dict) -> list[str]:
    return [h["_id"] for h in resp["hits"]["hits"]]


def test_index_uses_lucene_knn(client: OpenSearch, index: str) -> None:
    mapping = client.indices.get_mapping(index=index)[index]["mappings"]["properties"]["vec"]
    assert mapping["type"] == "knn_vector" and mapping["method"]["engine"] == "lucene"


def test_bm25_match(client: OpenSearch, index: str) -> None:
    resp = client.search(index=index, body={"query": {"match": {"title": "kittens yarn"}}})
    assert _ids(resp) == ["cat-en"]


def test_knn_query(client: OpenSearch, index: str) -> None:
    body = {"size": 3, "query": {"knn": {"vec": {"vector": [1.0, 0.0, 0.0, 0.0], "k": 3}}}}
    ids = _ids(client.search(index=index, body=body))
    assert ids[:2] == ["cat-en", "cat-fr"]


def test_knn_with_filter(client: OpenSearch, index: str) -> None:
    query = {"vector": [1.0, 0.0, 0.0, 0.0], "k": 3, "filter": {"term": {"lang": "fr"}}}
    resp = client.search(index=index, body={"size": 3, "query": {"knn": {"vec": query}}})
    ids = _ids(resp)
    assert ids[0] == "cat-fr"
    assert set(ids) <= {"cat-fr", "car-fr"}
    assert all(h["_source"]["lang"] == "fr" for h in resp["hits"]["hits"])


def test_alias_moves_atomically(client: OpenSearch, unique_name: str) -> None:
    blue, green, alias = f"{unique_name}_blue", f"{unique_name}_green", f"{unique_name}_live"
    try:
        for name, colour in ((blue, "blue"), (green, "green")):
            client.indices.create(index=name, body=MAPPING)
            client.index(index=name, id=colour, body={"title": colour, "lang": "en", "vec": [1, 0, 0, 0]}, refresh=True)
        client.indices.put_alias(index=blue, name=alias)
        assert _ids(client.search(index=alias)) == ["blue"]
        resp = client.indices.update_aliases(
            body={"actions": [{"remove": {"index": blue, "alias": alias}}, {"add": {"index": green, "alias": alias}}]}
        )
        assert resp["acknowledged"] is True
        assert list(client.indices.get_alias(name=alias)) == [green]
        assert _ids(client.search(index=alias)) == ["green"]
    finally:
        client.indices.delete(index=f"{blue},{green}", ignore_unavailable=True)
