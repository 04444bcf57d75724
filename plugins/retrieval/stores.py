"""Search adapters, one per store, behind one small interface the retriever fuses over.

Each adapter runs BM25 and k-NN with the filters inside the query (OpenSearch: `filter` in the
lucene k-NN clause and a bool filter for BM25; Milvus: a boolean `filter` expression evaluated
during the ANN search), so a filtered query still returns k hits. Scores are the store's own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from vidsearch.core.filters import Filters

TEXT_FIELDS = ["title^2", "description", "tags.text", "transcript", "ocr"]
LIGHT_FIELDS = ["title", "language", "duration", "tags", "model_version"]  # returned with every route hit


class Scored(dict):  # dict[str, float]
    """Scores by video id, plus the light fields each hit came with (`docs`), so a page of
    results needs no extra round trip unless moments ask for keyframes."""

    def __init__(self, scores: dict[str, float], docs: dict[str, dict[str, Any]]) -> None:
        super().__init__(scores)
        self.docs = docs


class SearchStore(Protocol):
    name: str

    def bm25(self, text: str, filters: Filters, k: int) -> dict[str, float]: ...

    def knn(self, field: str, vector: np.ndarray, filters: Filters, k: int) -> dict[str, float]: ...

    def fetch(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def opensearch_filter(f: Filters) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = []
    if f.language:
        clauses.append({"term": {"language": f.language}})
    if f.duration_min is not None or f.duration_max is not None:
        rng = {k: v for k, v in (("gte", f.duration_min), ("lte", f.duration_max)) if v is not None}
        clauses.append({"range": {"duration": rng}})
    if f.published_from or f.published_to:
        rng = {k: v.isoformat() for k, v in (("gte", f.published_from), ("lte", f.published_to)) if v}
        clauses.append({"range": {"published_at": rng}})
    if f.tags:
        clauses.append({"terms": {"tags": list(f.tags)}})
    return clauses


def milvus_filter(f: Filters) -> str:
    """A Milvus boolean expression; strings are JSON-quoted so no value can break out of it."""
    parts = []
    if f.language:
        parts.append(f"language == {json.dumps(f.language)}")
    if f.duration_min is not None:
        parts.append(f"duration >= {float(f.duration_min)}")
    if f.duration_max is not None:
        parts.append(f"(duration <= {float(f.duration_max)} and duration >= 0)")
    if f.published_from:
        parts.append(f"published_at >= {_ms(f.published_from)}")
    if f.published_to:
        parts.append(f"(published_at <= {_ms(f.published_to)} and published_at >= 0)")
    if f.tags:
        parts.append(f"ARRAY_CONTAINS_ANY(tags, {json.dumps(list(f.tags))})")
    return " and ".join(parts)


class OpenSearchStore:
    name = "opensearch"

    def __init__(self, client: Any, index: str, ef_search: int | None = None) -> None:
        self.client, self.index, self.ef_search = client, index, ef_search

    def bm25(self, text: str, filters: Filters, k: int) -> Scored:
        return self._hits(self.client.search(index=self.index, body=self.bm25_body(text, filters, k)))

    def knn(self, field: str, vector: np.ndarray, filters: Filters, k: int) -> Scored:
        return self._hits(self.client.search(index=self.index, body=self.knn_body(field, vector, filters, k)))

    def many(self, bodies: list[dict[str, Any]]) -> list[Scored]:
        """Several searches in one `_msearch` round trip (OpenSearch runs them in parallel)."""
        from opensearchpy.exceptions import TransportError

        lines: list[dict[str, Any]] = []
        for body in bodies:
            lines += [{"index": self.index}, body]
        out = []
        for resp in self.client.msearch(body=lines)["responses"]:
            if "error" in resp:
                raise TransportError(resp.get("status", 500), str(resp["error"])[:300])
            out.append(self._hits(resp))
        return out

    @staticmethod
    def bm25_body(text: str, filters: Filters, k: int) -> dict[str, Any]:
        return {"size": k, "_source": LIGHT_FIELDS, "query": {"bool": {
            "must": [{"multi_match": {"query": text, "fields": TEXT_FIELDS, "type": "best_fields"}}],
            "filter": opensearch_filter(filters)}}}

    @staticmethod
    def knn_body(field: str, vector: np.ndarray, filters: Filters, k: int) -> dict[str, Any]:
        clause: dict[str, Any] = {"vector": vector.astype(np.float32).tolist(), "k": k}
        flt = opensearch_filter(filters)
        if flt:
            clause["filter"] = {"bool": {"filter": flt}}
        return {"size": k, "_source": LIGHT_FIELDS, "query": {"knn": {field: clause}}}

    @staticmethod
    def _hits(resp: dict[str, Any]) -> Scored:
        hits = resp["hits"]["hits"]
        return Scored({h["_id"]: float(h["_score"]) for h in hits}, {h["_id"]: h.get("_source") or {} for h in hits})

    def fetch(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        fields = ["video_id", "title", "description", "tags", "language", "duration", "published_at", "media_uri",
                  "keyframes", "segments", "model_version"]
        resp = self.client.mget(index=self.index, body={"ids": list(ids)}, _source_includes=fields)
        return {d["_id"]: d["_source"] for d in resp["docs"] if d.get("found")}


MILVUS_LIGHT = ["id", "title", "language", "duration", "tags"]


class MilvusStore:
    """`connect` makes a client: pymilvus connects when a client is built, so connecting lazily
    (and again after a failure) keeps a Milvus outage from failing the whole retriever's startup."""

    name = "milvus"

    def __init__(self, connect: Callable[[], Any], collection: str, ef_search: int = 128) -> None:
        self.connect, self.collection, self.ef_search = connect, collection, ef_search
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            client = self.connect()
            # A collection reopened by a (re)started server is released; load it before the
            # first search rather than failing it (`make_client` clients also retry on it).
            if hasattr(client, "ensure_loaded"):
                client.ensure_loaded(self.collection)
            self._client = client
        return self._client

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except Exception:
            self._client = None  # reconnect next time (a restarted server invalidates the channel)
            raise

    def bm25(self, text: str, filters: Filters, k: int) -> dict[str, float]:
        res = self._call("search", self.collection, data=[text], anns_field="sparse", limit=k, filter=milvus_filter(filters),
                                 search_params={"metric_type": "BM25"}, output_fields=MILVUS_LIGHT)
        # milvus-lite reports BM25 as a negative distance (more negative = better), Milvus as a
        # positive score; both return best first, so the magnitude is the score.
        return self._scored(res[0], absolute=True)

    def knn(self, field: str, vector: np.ndarray, filters: Filters, k: int) -> dict[str, float]:
        res = self._call("search", self.collection, data=[vector.astype(np.float32).tolist()], anns_field=field, limit=k,
                                 filter=milvus_filter(filters),
                                 search_params={"metric_type": "IP", "params": {"ef": max(self.ef_search, k)}},
                                 output_fields=MILVUS_LIGHT)
        return self._scored(res[0])

    @staticmethod
    def _scored(hits: Any, absolute: bool = False) -> Scored:
        docs = {}
        for h in hits:
            e = h.get("entity") or {}
            docs[h["id"]] = {"title": e.get("title"), "language": e.get("language") or None,
                             "duration": e["duration"] if e.get("duration", -1) >= 0 else None, "tags": list(e.get("tags") or [])}
        return Scored({h["id"]: abs(float(h["distance"])) if absolute else float(h["distance"]) for h in hits}, docs)

    def fetch(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        rows = self._call("get", self.collection, ids=list(ids),
                               output_fields=["id", "title", "language", "duration", "published_at", "tags", "meta"])
        out = {}
        for r in rows:
            meta = r.get("meta") or {}
            out[r["id"]] = {
                "video_id": r["id"], "title": r["title"], "language": r["language"] or None,
                "duration": r["duration"] if r["duration"] >= 0 else None, "tags": list(r.get("tags") or []),
                "media_uri": meta.get("media_uri"), "keyframes": meta.get("keyframes", []),
                "segments": meta.get("segments", []), "model_version": meta.get("model_version"),
            }
        return out
