"""The Milvus side of the video catalogue: a collection per model version behind an alias, the
same vectors as OpenSearch, a BM25 function over the lexical text, scalar fields for filters,
and a small tombstone collection (Milvus has no conditional writes; see the sink).

Vectors are unit length, so the IP metric ranks exactly as cosine; unlike COSINE it also accepts
the zero vector a missing modality (no speech, no on-screen text) is stored as, scoring it 0.
IP is also what NCL's bias folding needs (`[v; tau*beta]`; docs/architecture.md, "Algorithms")."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from pymilvus import DataType, Function, FunctionType, MilvusClient
from pymilvus.exceptions import MilvusException

from vidsearch.core.documents import VECTOR_FIELDS

DIM = 384
MAX_TEXT_BYTES = 60_000
MAX_TITLE_BYTES = 4_000
MAX_JSON_BYTES = 60_000
# What an oversized `meta` JSON loses first; each dropped key leaves `<key>_truncated: true`
# (keyframe vectors are made compact before the keyframes themselves go: see `to_row`).
META_DROP_ORDER = ("extra", "keyframes", "segments", "description")
# Lucene's English stop set (what OpenSearch's `english` analyzer removes)
ENGLISH_STOP_WORDS = ("a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
                      "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
                      "they", "this", "to", "was", "will", "with")


def collection_name(prefix: str, model_version: str) -> str:
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9_]+', '_', model_version)}"


def tombstone_name(collection: str) -> str:
    return f"{collection}__tombstones"


def _schema(client: MilvusClient):  # -> CollectionSchema
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=256)
    schema.add_field("version", DataType.INT64)
    schema.add_field("title", DataType.VARCHAR, max_length=MAX_TITLE_BYTES + 100)
    # English stop words, like the OpenSearch text fields (a query "A frog." must not match every
    # video containing "a"); milvus-lite knows neither the "english" analyzer nor "_english_".
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES + 100, enable_analyzer=True,
                     analyzer_params={"tokenizer": "standard",
                                      "filter": ["lowercase", {"type": "stop", "stop_words": list(ENGLISH_STOP_WORDS)}]})
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("language", DataType.VARCHAR, max_length=16)
    schema.add_field("duration", DataType.FLOAT)
    schema.add_field("published_at", DataType.INT64)
    schema.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=100, max_length=100)
    schema.add_field("meta", DataType.JSON)
    # Added after the first schema (milvus-lite cannot add a field to an existing collection, so the
    # store checks whether a collection has it: see MilvusVideoStore._has_lengths).
    schema.add_field("text_lengths", DataType.ARRAY, element_type=DataType.INT64, max_capacity=4)
    for name in VECTOR_FIELDS:
        schema.add_field(f"vec_{name}", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("vec_ncl", DataType.FLOAT_VECTOR, dim=DIM + 1)  # [fused; tau*beta], NCL by IP
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"], output_field_names=["sparse"]))
    return schema


def _index_params(client: MilvusClient):
    params = client.prepare_index_params()
    for name in (*VECTOR_FIELDS, "ncl"):
        params.add_index(field_name=f"vec_{name}", index_type="HNSW", metric_type="IP", params={"M": 16, "efConstruction": 128})
    params.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    return params


def _create(client: MilvusClient, name: str, **kwargs: Any) -> None:
    """Create a collection; another process creating it at the same moment is not an error."""
    try:
        client.create_collection(name, consistency_level="Strong", **kwargs)
    except MilvusException:
        if not client.has_collection(name):
            raise


def ensure_collection(client: MilvusClient, name: str, alias: str | None) -> None:
    """Create the collection and its tombstone collection when missing; with `alias`, point it at
    the collection only when that alias does not exist yet (an existing alias moves by swap only)."""
    if not client.has_collection(name):
        _create(client, name, schema=_schema(client), index_params=_index_params(client))
    tomb = tombstone_name(name)
    if not client.has_collection(tomb):
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=256)
        schema.add_field("version", DataType.INT64)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs one vector field
        params = client.prepare_index_params()
        params.add_index(field_name="v", index_type="FLAT", metric_type="L2")
        _create(client, tomb, schema=schema, index_params=params)
    if alias and alias not in client.list_aliases().get("aliases", []):
        try:
            client.create_alias(collection_name=name, alias=alias)
        except MilvusException:
            if alias not in client.list_aliases().get("aliases", []):
                raise


def _clip(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    return text if len(data) <= max_bytes else data[:max_bytes].decode("utf-8", "ignore")


def _ms(value: datetime | None) -> int:
    return int(value.timestamp() * 1000) if value else -1


def compact_vector(vector: Any) -> list[int]:
    """A vector's direction as integers in [-127, 127], half the JSON of 4-decimal floats: moments
    only take cosines of keyframe vectors, which this keeps to within 1e-4."""
    v = np.asarray(vector, dtype=np.float32)
    peak = float(np.abs(v).max()) if v.size else 0.0
    return np.round(v * (127.0 / peak)).astype(int).tolist() if peak > 0 else [0] * v.size


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def to_row(doc: Any) -> dict[str, Any]:
    """IndexDoc -> Milvus row (strings clipped to the schema's byte limits). `meta` goes as a JSON
    string serialised once here: handed a dict, pymilvus walks every nested float in Python
    before serialising it, which cost more than the rest of the Milvus write."""
    # Keyframes (rounded vectors, their shot bounds) and timed text (transcript and OCR segments)
    # ride along for moments on the Milvus-only path, and the description for re-embedding a
    # Milvus-only deployment (the `text` field mixes it with everything else). Over the JSON limit,
    # `extra` goes first, then keyframe vectors shrink to integers, then keys go in `META_DROP_ORDER`.
    meta: dict[str, Any] = {
        "model_version": doc.model_version, "media_uri": doc.media_uri,
        "keyframe_times": [k["t"] for k in doc.keyframes],
        "keyframes": [{**k, "vector": np.round(np.asarray(k["vector"], dtype=np.float32), 4)} for k in doc.keyframes],
        "segments": doc.segments, "extra": doc.extra, "description": doc.description, "copies": doc.copies,
    }
    body = _json(meta)
    for drop in META_DROP_ORDER:
        if len(body) <= MAX_JSON_BYTES:
            break
        if drop == "keyframes":
            meta["keyframes"] = [{**k, "vector": compact_vector(k["vector"])} for k in doc.keyframes]
            meta["keyframes_compact"] = True
            body = _json(meta)
            if len(body) <= MAX_JSON_BYTES:
                break
            meta.pop("keyframes_compact")
        meta.pop(drop)
        meta[f"{drop}_truncated"] = True
        body = _json(meta)
    return {
        "id": doc.video_id,
        "version": doc.version,
        "title": _clip(doc.title, MAX_TITLE_BYTES),
        "text": _clip(doc.lexical_text, MAX_TEXT_BYTES),
        "language": _clip(doc.language or "", 16),
        "duration": float(doc.duration) if doc.duration is not None else -1.0,
        "published_at": _ms(doc.published_at),
        "tags": [_clip(t, 100) for t in doc.tags[:100]],  # VARCHAR limits count bytes
        "meta": body.decode("utf-8"),
        "text_lengths": doc.text_lengths,
        **{f"vec_{name}": doc.vectors[name].tolist() for name in VECTOR_FIELDS},
        "vec_ncl": doc.ncl_vector.tolist(),
    }
