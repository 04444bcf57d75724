"""Search request bodies and result parsing: BM25 `multi_match` with a bool filter, lucene k-NN
with the filter inside the k-NN clause (filtered while searching, so k hits still come back)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vidsearch.core.documents import STORED_FIELDS
from vidsearch.core.filters import Filters
from vidsearch.core.store import Scored
from vidsearch.plugins.opensearch.filters import clauses, knn_filter

TEXT_FIELDS = ["title^2", "description", "tags.text", "transcript", "ocr"]
LIGHT_FIELDS = ["title", "language", "duration", "tags", "model_version", "text_lengths"]  # returned with every route hit
_EMPTY: dict[str, Any] = {"tags": list, "keyframes": list, "segments": list, "extra": dict, "copies": list}


def bm25_body(text: str, filters: Filters, k: int) -> dict[str, Any]:
    return {"size": k, "_source": LIGHT_FIELDS, "query": {"bool": {
        "must": [{"multi_match": {"query": text, "fields": TEXT_FIELDS, "type": "best_fields"}}],
        "filter": clauses(filters)}}}


def knn_body(field: str, vector: np.ndarray, filters: Filters, k: int) -> dict[str, Any]:
    clause: dict[str, Any] = {"vector": np.asarray(vector, dtype=np.float32).tolist(), "k": k}
    flt = knn_filter(filters)
    if flt:
        clause["filter"] = flt
    return {"size": k, "_source": LIGHT_FIELDS, "query": {"knn": {field: clause}}}


def query_body(query: tuple[Any, ...], filters: Filters, k: int) -> dict[str, Any]:
    """`("bm25", text)` or `("knn", field, vector)` -> a search body."""
    if query[0] == "bm25" and len(query) == 2:
        return bm25_body(query[1], filters, k)
    if query[0] == "knn" and len(query) == 3:
        return knn_body(query[1], query[2], filters, k)
    raise ValueError(f"unknown query {query[0]!r}: expected ('bm25', text) or ('knn', field, vector)")


def scored(resp: Mapping[str, Any]) -> Scored:
    hits = resp["hits"]["hits"]
    return Scored({h["_id"]: float(h["_score"]) for h in hits}, {h["_id"]: h.get("_source") or {} for h in hits})


def stored(source: Mapping[str, Any], video_id: str | None = None) -> dict[str, Any]:
    """A stored OpenSearch document -> the STORED_FIELDS dict every backend returns."""
    out = {f: source.get(f) for f in STORED_FIELDS}
    for f, empty in _EMPTY.items():
        if out[f] is None:
            out[f] = empty()
    if out["video_id"] is None and video_id is not None:
        out["video_id"] = video_id
    return out
