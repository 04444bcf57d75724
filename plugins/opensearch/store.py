"""`VideoStore` on OpenSearch: one index per model version (`<prefix>-<version>`) behind one alias
(the prefix), documents versioned by OpenSearch itself (external versions, `external_gte`), delete
tombstones kept by `index.gc_deletes`, BM25 and lucene-HNSW k-NN with the filters inside the query.

Everything vidsearch knows about OpenSearch lives under this folder; the rest of vidsearch talks
to it through the contract in `vidsearch.core.store`."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import ConnectionTimeout, NotFoundError, TransportError

from vidsearch.core.documents import STORED_FIELDS, Operation
from vidsearch.core.errors import StoreUnavailableError
from vidsearch.core.filters import Filters
from vidsearch.core.retry import with_retries
from vidsearch.core.settings import Settings
from vidsearch.core.store import Scored, WriteResult
from vidsearch.plugins.opensearch import install as installer
from vidsearch.plugins.opensearch.bulk import (
    DATA_ERRORS,
    TransientItems,
    bulk_units,
    is_transient,
    item_outcome,
    plan_bulk,
    serializer_of,
    split_bulk,
)
from vidsearch.plugins.opensearch.client import make_client
from vidsearch.plugins.opensearch.search import bm25_body, knn_body, query_body, scored, stored
from vidsearch.plugins.opensearch.videos import ensure_index, index_name

__all__ = ["DATA_ERRORS", "OpenSearchVideoStore", "plan_bulk", "split_bulk"]

log = logging.getLogger(__name__)
SCROLL = "5m"
MGET_CHUNK = 500


# What this backend raises when it cannot answer now (down, timing out, index missing), as opposed
# to a bug in a query, which must surface: the retriever degrades a route on these.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (OSConnectionError, ConnectionTimeout, NotFoundError, TransportError)


class OpenSearchVideoStore:
    name = "opensearch"
    keeps_full_documents = True

    def __init__(self, settings: Settings, *, client: OpenSearch | None = None, timeout_s: float | None = None,
                 pool: int | None = None) -> None:
        self.settings = settings
        self.alias = settings.indexer.index_prefix
        self.timeout_s = settings.opensearch.timeout_s if timeout_s is None else timeout_s
        # Whole-index reads (scroll pages, NCL rewrites) outlast a search's short timeout.
        self.long_timeout_s = max(self.timeout_s, 60.0)
        if client is None:
            cfg = settings.opensearch.model_copy(update={"timeout_s": self.timeout_s})
            extra: dict[str, Any] = {"maxsize": pool} if pool else {}
            client = make_client(cfg, max_retries=0, **extra)
        self.client = client
        self._ensured: set[str] = set()

    # -- schema and lifecycle ------------------------------------------------------------------
    def physical(self, version: str) -> str:
        return index_name(self.alias, version)

    def _target(self, version: str | None) -> str:
        return self.alias if version is None else self.physical(version)

    def ensure(self, version: str, *, alias: bool = False) -> None:
        index = self.physical(version)
        ensure_index(self.client, index, self.alias if alias else None, self.settings.opensearch.number_of_replicas,
                     self.settings.opensearch.number_of_shards)
        self._ensured.add(index)

    def exists(self, version: str) -> bool:
        return bool(self.client.indices.exists(index=self.physical(version)))

    def drop(self, version: str) -> None:
        index = self.physical(version)
        self.client.indices.delete(index=index, ignore_unavailable=True)
        self._ensured.discard(index)

    def install(self, version: str) -> dict[str, Any]:
        report = installer.install(self.client, self.alias, version, self.settings.opensearch.number_of_replicas,
                                   self.settings.opensearch.number_of_shards)
        self._ensured.add(self.physical(version))
        return report

    # -- writes --------------------------------------------------------------------------------
    def write(self, version: str, ops: Sequence[Operation]) -> WriteResult:
        result = WriteResult()
        if not ops:
            return result
        index = self.physical(version)
        budget = self.settings.opensearch.bulk_max_bytes
        by_id = {op.video_id: op for op in ops}
        pending: list[Operation] = list(ops)

        def attempt() -> None:
            nonlocal pending
            if index not in self._ensured:
                self.ensure(version)
            units, refused = bulk_units(serializer_of(self.client), index, version, pending, budget)
            for vid, reason in refused.items():
                log.warning("opensearch refused a document before sending video_id=%s reason=%s", vid, reason)
                result.rejected[vid] = reason
            retry: dict[str, Operation] = {}
            for a, b in plan_bulk([len(unit) for _, unit in units], budget):
                try:
                    resp = self.client.bulk(body=b"".join(unit for _, unit in units[a:b]), request_timeout=self.timeout_s,
                                            wait_for_active_shards=self.settings.opensearch.wait_for_active_shards)
                except Exception:
                    # This request and the later ones are unacknowledged; the earlier ones are done.
                    pending = list({**retry, **{op.video_id: op for op, _ in units[a:]}}.values())
                    raise
                for item in resp["items"]:
                    action, info = next(iter(item.items()))
                    vid = info.get("_id", "")
                    outcome, reason = item_outcome(action, info)
                    if outcome == "written":
                        result.written += 1
                    elif outcome == "stale":
                        result.stale += 1
                    elif outcome == "rejected":
                        result.rejected[vid] = reason
                    elif vid in by_id:
                        retry[vid] = by_id[vid]
            pending = list(retry.values())
            if retry:
                raise TransientItems(f"{len(retry)} items failed with a retryable status")

        cfg = self.settings.indexer
        with_retries(self.name, cfg.retry_attempts, cfg.retry_max_wait_s, is_transient, attempt)
        return result

    def remove(self, version: str, video_ids: Sequence[str]) -> None:
        """Plain (unversioned) deletes: re-embedding's catch-up removes what the source no longer has."""
        index = self.physical(version)
        ids = list(dict.fromkeys(video_ids))
        if not ids:
            return

        def attempt() -> None:
            resp = self.client.bulk(body=[{"delete": {"_index": index, "_id": vid}} for vid in ids],
                                    request_timeout=self.long_timeout_s)
            if not resp.get("errors"):
                return
            failed = [info for item in resp["items"] for info in item.values()
                      if info.get("status", 500) >= 300 and info.get("status") != 404]
            if failed:
                raise TransientItems(f"{len(failed)} deletes failed, first: {failed[0].get('error')}")

        cfg = self.settings.indexer
        with_retries(self.name, cfg.retry_attempts, cfg.retry_max_wait_s, is_transient, attempt)

    def refresh(self, version: str | None = None) -> None:
        self.client.indices.refresh(index=self._target(version))

    def write_ncl(self, biases: Mapping[str, float], version: str | None = None) -> int:
        """Reads each listed document whole, then indexes it back with `vec_ncl` set, at the
        version it was read with (`external_gte`): a video updated or deleted in between has a
        higher version, so its rewrite is refused (409) and it is not counted."""
        ids = [vid for vid in biases]
        actions: list[dict[str, Any]] = []
        for start in range(0, len(ids), MGET_CHUNK):
            resp = self.client.mget(index=self._target(version), body={"ids": ids[start:start + MGET_CHUNK]},
                                    request_timeout=self.long_timeout_s)
            failed = [doc for doc in resp["docs"] if "error" in doc]
            if failed:  # a shard that cannot serve the read: the store's state, never silently skipped
                raise StoreUnavailableError(self.name, f"ncl: {len(failed)} documents could not be read: "
                                                       f"{str(failed[0].get('error'))[:300]}")
            for doc in resp["docs"]:
                src = doc.get("_source") or {}
                fused = src.get("vec_fused")
                if not doc.get("found") or not fused or not any(fused):
                    continue
                vec_ncl = np.append(np.asarray(fused, np.float32), np.float32(biases[doc["_id"]])).astype(np.float32)
                actions.append({"_op_type": "index", "_index": doc["_index"], "_id": doc["_id"],
                                "version": int(doc.get("_version", src.get("version", 0))), "version_type": "external_gte",
                                "_source": {**src, "vec_ncl": vec_ncl.tolist()}})
        if not actions:
            return 0
        ok, errors = helpers.bulk(self.client, actions, raise_on_error=False, refresh="wait_for",
                                  max_chunk_bytes=self.settings.opensearch.bulk_max_bytes,
                                  request_timeout=self.long_timeout_s)
        for err in errors:
            info = next(iter(err.values())) if isinstance(err, dict) else {}
            if info.get("status") == 409:  # a newer event landed meanwhile: its own write is authoritative
                log.info("ncl: skipped video_id=%s (changed since read)", info.get("_id"))
            else:
                log.warning("ncl: rewrite failed %s", str(err)[:300])
        return int(ok)

    # -- reads ---------------------------------------------------------------------------------
    def bm25(self, text: str, filters: Filters, k: int, version: str | None = None) -> Scored:
        return scored(self.client.search(index=self._target(version), body=bm25_body(text, filters, k)))

    def knn(self, field: str, vector: np.ndarray, filters: Filters, k: int, version: str | None = None) -> Scored:
        return scored(self.client.search(index=self._target(version), body=knn_body(field, vector, filters, k)))

    def many(self, queries: list[tuple[Any, ...]], filters: Filters, k: int, version: str | None = None) -> list[Scored]:
        """Several searches in one `_msearch` round trip (OpenSearch runs them in parallel), in
        order. Each query is `("bm25", text)` or `("knn", field, vector)`; one failed search fails
        the call (TransportError), as a single search would."""
        if not queries:
            return []
        target = self._target(version)
        lines: list[dict[str, Any]] = []
        for query in queries:
            lines += [{"index": target}, query_body(query, filters, k)]
        out = []
        for resp in self.client.msearch(body=lines)["responses"]:
            if "error" in resp:
                raise TransportError(resp.get("status", 500), str(resp["error"])[:300])
            out.append(scored(resp))
        return out

    def fetch(self, ids: Sequence[str], version: str | None = None) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), MGET_CHUNK):
            resp = self.client.mget(index=self._target(version), body={"ids": unique[start:start + MGET_CHUNK]},
                                    _source_includes=list(STORED_FIELDS))
            out.update({d["_id"]: stored(d.get("_source") or {}, d["_id"]) for d in resp["docs"] if d.get("found")})
        return out

    def count(self, version: str | None = None) -> int:
        return int(self.client.count(index=self._target(version))["count"])

    def scan(self, version: str | None = None, *, slice_id: int = 0, slices: int = 1,
             batch: int = 500) -> Iterator[list[dict[str, Any]]]:
        """Sliced scroll: a slice is a hash of the `_id`, so the same ids land in the same slice on
        every call. The scroll context is released even when the caller stops early."""
        if not 0 <= slice_id < max(slices, 1):
            raise ValueError(f"slice_id {slice_id} is outside 0..{slices - 1}")
        body: dict[str, Any] = {"query": {"match_all": {}}, "sort": ["_doc"], "size": batch, "_source": list(STORED_FIELDS)}
        if slices > 1:
            body["slice"] = {"id": slice_id, "max": slices}
        resp = self.client.search(index=self._target(version), body=body, scroll=SCROLL, request_timeout=self.long_timeout_s)
        scroll_id = resp.get("_scroll_id")
        try:
            while hits := resp["hits"]["hits"]:
                yield [stored(h.get("_source") or {}, h["_id"]) for h in hits]
                resp = self.client.scroll(scroll_id=scroll_id, scroll=SCROLL, request_timeout=self.long_timeout_s)
                scroll_id = resp.get("_scroll_id") or scroll_id
        finally:
            if scroll_id:
                try:
                    self.client.clear_scroll(scroll_id=scroll_id, ignore=(404,))
                except Exception as exc:  # noqa: BLE001 - the context expires by itself; never mask the real error
                    log.info("opensearch: could not clear a scroll: %s", exc)

    def id_versions(self, version: str | None = None) -> dict[str, tuple[int, str]]:
        out: dict[str, tuple[int, str]] = {}
        for hit in helpers.scan(self.client, index=self._target(version), size=1000, request_timeout=self.long_timeout_s,
                                query={"query": {"match_all": {}}, "_source": ["version", "model_version"]}):
            src = hit.get("_source") or {}
            out[hit["_id"]] = (int(src.get("version", hit.get("_version", 0))), src.get("model_version") or "")
        return out

    def vectors(self, field: str = "vec_fused", version: str | None = None) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for hit in helpers.scan(self.client, index=self._target(version), size=500, request_timeout=self.long_timeout_s,
                                query={"query": {"exists": {"field": field}}, "_source": [field]}):
            values = (hit.get("_source") or {}).get(field)
            if values:
                vec = np.asarray(values, np.float32)
                if vec.any():
                    out[hit["_id"]] = vec
        return out

    # -- alias ---------------------------------------------------------------------------------
    def _alias_indices(self) -> list[str]:
        try:
            return sorted(self.client.indices.get_alias(name=self.alias) or {})
        except NotFoundError:
            return []

    def alias_target(self) -> str | None:
        current = self._alias_indices()
        return current[0] if current else None

    def swap(self, version: str) -> dict[str, Any]:
        """One `_aliases` call removes the alias from every index and adds it to the target:
        OpenSearch applies the actions atomically."""
        new_index = self.physical(version)
        current = self._alias_indices()
        actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": self.alias}} for i in current if i != new_index]
        actions.append({"add": {"index": new_index, "alias": self.alias}})
        self.client.indices.update_aliases(body={"actions": actions})
        previous = [i for i in current if i != new_index] or current
        return {"alias": self.alias, "from": previous[0] if previous else None, "to": new_index}

    def drop_alias(self) -> None:
        try:
            self.client.indices.delete_alias(index="_all", name=self.alias)
        except NotFoundError:
            pass

    # -- health --------------------------------------------------------------------------------
    def healthy(self) -> bool:
        """Answering HTTP is not enough after a restart: the alias and the indices this store
        writes must have recovered (green or yellow). Only names that exist are asked about (the
        health of a missing index waits out its timeout, then says red)."""
        try:
            names = [n for n in [self.alias, *sorted(self._ensured)] if self.client.indices.exists(index=n, request_timeout=5)]
            health = self.client.cluster.health(index=",".join(names) or None, timeout="3s", request_timeout=5)
            return health.get("status") in ("green", "yellow")
        except Exception:  # noqa: BLE001 - a health probe: any failure means unhealthy
            return False

    def close(self) -> None:
        try:
            self.client.close()
        except Exception as exc:  # noqa: BLE001 - closing pooled connections must never fail a shutdown
            log.info("opensearch: close failed: %s", exc)

