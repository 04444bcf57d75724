"""The OpenSearch side of the video catalogue: a versioned index per model version behind an
alias, text fields for BM25, lucene-HNSW `knn_vector` fields, keyframes for moments."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from opensearchpy import OpenSearch
from opensearchpy.exceptions import RequestError

from vidsearch.core.documents import VECTOR_FIELDS

DIM = 384
KNN_METHOD = {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil", "parameters": {"m": 16, "ef_construction": 128}}
# NCL-folded vectors [v; tau*beta] are not unit length: they are ranked by inner product.
NCL_METHOD = {**KNN_METHOD, "space_type": "innerproduct"}


def safe_version(model_version: str) -> str:
    return re.sub(r"[^a-z0-9_\-]+", "-", model_version.lower()).strip("-")


def index_name(prefix: str, model_version: str) -> str:
    return f"{prefix}-{safe_version(model_version)}"


# Fields added after the first mapping: `ensure_index` also puts them on indices created before
# (adding a field is a safe mapping update; a strict mapping would otherwise refuse new documents).
ADDED_FIELDS: dict[str, Any] = {
    "text_lengths": {"type": "integer", "index": False, "doc_values": False},  # see IndexDoc.text_lengths
    "copies": {"type": "keyword"},  # see IndexDoc.copies: filterable ("which videos copy X")
}


def mapping(replicas: int = 0, shards: int = 1) -> dict[str, Any]:
    """The index body; `replicas` is `opensearch.number_of_replicas` (0 on one node; 1 or more on a
    cluster, so a lost data node's shards are promoted rather than lost), `shards` is
    `opensearch.number_of_shards` (more spread a big catalogue's primaries over a cluster's nodes)."""
    vectors = {f"vec_{name}": {"type": "knn_vector", "dimension": DIM, "method": KNN_METHOD} for name in VECTOR_FIELDS}
    vectors["vec_ncl"] = {"type": "knn_vector", "dimension": DIM + 1, "method": NCL_METHOD}
    return {
        "settings": {
            "index": {"knn": True, "number_of_shards": shards, "number_of_replicas": replicas, "refresh_interval": "1s"},
            # Keep delete tombstones (with their external versions) for a day, so an older
            # upsert replayed after a delete cannot resurrect the video.
            "index.gc_deletes": "24h",
            # Keep vectors in the stored _source. OpenSearch 3.x derives them from the HNSW files
            # by default ("derived source"), and then a realtime get after a scroll over the same
            # segments fails with `already_closed_exception` (seen on 3.5 with NCL's rewrite).
            "index.knn.derived_source.enabled": False,
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "video_id": {"type": "keyword"},
                "version": {"type": "long"},
                "model_version": {"type": "keyword"},
                "title": {"type": "text", "analyzer": "english", "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
                "description": {"type": "text", "analyzer": "english"},
                "tags": {"type": "keyword", "fields": {"text": {"type": "text"}}},
                "transcript": {"type": "text", "analyzer": "english"},
                "ocr": {"type": "text"},
                "language": {"type": "keyword"},
                "duration": {"type": "float"},
                "published_at": {"type": "date"},
                "media_uri": {"type": "keyword", "index": False},
                "keyframes": {"type": "object", "enabled": False},
                "segments": {"type": "object", "enabled": False},
                "extra": {"type": "object", "enabled": False},
                **ADDED_FIELDS,
                **vectors,
            },
        },
    }


def ensure_index(client: OpenSearch, index: str, alias: str | None, replicas: int = 0, shards: int = 1) -> None:
    """Create `index` if missing; point `alias` at it only if the alias does not exist yet (an
    existing alias is moved by the blue/green swap, never by a consumer starting up). An existing
    index keeps its replica and shard counts: changing them is an operator's `_settings` (or reindex) call."""
    if not client.indices.exists(index=index):
        try:
            client.indices.create(index=index, body=mapping(replicas, shards))
        except RequestError as exc:
            if "resource_already_exists_exception" not in str(exc):
                raise
    else:
        client.indices.put_mapping(index=index, body={"properties": ADDED_FIELDS})
    if alias and not client.indices.exists_alias(name=alias):
        client.indices.update_aliases(body={"actions": [{"add": {"index": index, "alias": alias}}]})


def to_source(doc: Any) -> dict[str, Any]:
    """IndexDoc -> OpenSearch document."""
    return {
        "video_id": doc.video_id,
        "version": doc.version,
        "model_version": doc.model_version,
        "title": doc.title,
        "description": doc.description,
        "tags": doc.tags,
        "transcript": doc.transcript,
        "ocr": doc.ocr,
        "language": doc.language,
        "duration": doc.duration,
        "published_at": doc.published_at.isoformat() if doc.published_at else None,
        "media_uri": doc.media_uri,
        # float32 arrays: the client's serializer writes them in their shortest exact form
        "keyframes": [{**k, "vector": np.asarray(k["vector"], dtype=np.float32)} for k in doc.keyframes],
        "segments": doc.segments,
        "extra": doc.extra,
        "text_lengths": doc.text_lengths,
        "copies": doc.copies,
        **{f"vec_{name}": np.asarray(doc.vectors[name], dtype=np.float32) for name in VECTOR_FIELDS if doc.vectors[name].any()},
        **({"vec_ncl": np.asarray(doc.ncl_vector, dtype=np.float32)} if doc.vectors["fused"].any() else {}),
    }
