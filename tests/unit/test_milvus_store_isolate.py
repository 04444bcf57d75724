"""The Milvus store under the document writer during a re-embed: every write path (the batch and
the row-by-row isolation after a refused batch) must send each collection its own model
version's vectors."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from pymilvus.exceptions import MilvusException

from vidsearch.connector.writer import DocumentWriter
from vidsearch.core.documents import VECTOR_FIELDS, IndexDoc
from vidsearch.core.settings import IndexerSettings, Settings
from vidsearch.plugins.milvus.store import MilvusVideoStore
from vidsearch.plugins.milvus.videos import collection_name

pytestmark = pytest.mark.unit

OLD, NEW = "old-v1", "new-v2"
PREFIX = "t_isolate"


class FakeClient:
    """Just enough of MilvusClient: refuses any upsert of more than one row (a non-transient
    refusal), so the sink falls back to isolating rows, and records what each collection got."""

    def __init__(self, refuse_batches: bool = True) -> None:
        self.refuse_batches = refuse_batches
        self.upserts: dict[str, list[dict[str, Any]]] = {}

    def query(self, name: str, filter: str, output_fields: list[str]) -> list[dict[str, Any]]:
        return []

    def upsert(self, name: str, rows: list[dict[str, Any]]) -> None:
        if self.refuse_batches and len(rows) > 1:
            raise MilvusException(message="field exceeds max length")  # not a transient hint
        self.upserts.setdefault(name, []).extend(rows)

    def delete(self, name: str, ids: list[str]) -> None:
        pass

    def list_collections(self) -> list[str]:
        return []

    def load_collection(self, name: str) -> None:
        pass

    def close(self) -> None:
        pass


def _vectors(value: float) -> dict[str, np.ndarray]:
    return {f: np.full(384, value, dtype=np.float32) for f in VECTOR_FIELDS}


def _doc(video_id: str) -> IndexDoc:
    return IndexDoc(
        video_id=video_id, version=1, title=video_id, description="", tags=[], language=None,
        duration=1.0, published_at=None, transcript="", ocr="", vectors=_vectors(1.0),
        model_version=OLD, by_version={NEW: _vectors(2.0)},
    )


def _writer(client: FakeClient) -> DocumentWriter:
    settings = Settings(indexer=IndexerSettings(collection_prefix=PREFIX, model_version=OLD, write_versions=(NEW,)))
    store = MilvusVideoStore(settings, client=client)
    store._ensured.update(store.physical(v) for v in (OLD, NEW))  # the fake needs no schema
    return DocumentWriter.from_settings(settings, [store])


def _fused(row: dict[str, Any]) -> float:
    return float(row["vec_fused"][0])


@pytest.mark.parametrize("refuse_batches", [True, False], ids=["isolate", "batch"])
def test_each_collection_gets_its_own_versions_vectors(refuse_batches: bool) -> None:
    client = FakeClient(refuse_batches=refuse_batches)
    result = _writer(client).write([_doc("a"), _doc("b")])
    assert result.rejected == {}
    old_rows = client.upserts[collection_name(PREFIX, OLD)]
    new_rows = client.upserts[collection_name(PREFIX, NEW)]
    assert sorted(r["id"] for r in old_rows) == sorted(r["id"] for r in new_rows) == ["a", "b"]
    assert {_fused(r) for r in old_rows} == {1.0}
    assert {_fused(r) for r in new_rows} == {2.0}
    assert {json.loads(r["meta"])["model_version"] for r in old_rows} == {OLD}
    assert {json.loads(r["meta"])["model_version"] for r in new_rows} == {NEW}
