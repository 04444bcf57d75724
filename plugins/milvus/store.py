"""The Milvus backend of the `VideoStore` contract (vidsearch.core.store): one collection per model
version (`videos.collection_name`) behind one alias (the configured collection prefix), each with a
small tombstone collection beside it.

Why tombstones: Milvus has no conditional write, so the version rule is applied here. A write
reads the stored versions (live rows and tombstones) of its batch's ids, drops operations older
than what is stored (`stale`), then upserts rows and deletes-with-tombstone. Replays are
idempotent (primary key). A delete keeps its version in the tombstone collection, so an older
upsert replayed later cannot resurrect the video.

Connections: the client is made lazily and dropped after a transport failure, so the next call
reconnects (a restarted server invalidates the gRPC channel; a store built while Milvus is down
must not fail its owner's start-up). The same code serves a Milvus server (`http://...`) and an
embedded milvus-lite file URI (served by the catalogue's private server, see `lite.py`).

`keeps_full_documents` is False: the `meta` JSON (description, keyframes, segments, extra) is
clipped when oversized (`videos.META_DROP_ORDER`), and transcript and OCR text are kept only inside
the BM25 input, not separately.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
from pymilvus.exceptions import MilvusException

from vidsearch.core.documents import STORED_FIELDS, IndexDoc, Operation, Tombstone
from vidsearch.core.errors import InfrastructureError, StoreUnavailableError
from vidsearch.core.filters import Filters
from vidsearch.core.retry import with_retries
from vidsearch.core.settings import Settings
from vidsearch.core.store import Scored, WriteResult
from vidsearch.plugins.milvus.client import close_quietly, is_not_loaded, iter_rows, make_client
from vidsearch.plugins.milvus.filters import quote_list, to_expr
from vidsearch.plugins.milvus.videos import (
    collection_name,
    ensure_collection,
    to_row,
    tombstone_name,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_HINTS = ("unavailable", "deadline", "connect", "timeout", "timed out", "closed", "refused", "not ready", "rpc")
DEFAULT_TIMEOUT_S = 10.0
EF_SEARCH = 128  # HNSW candidate list; raised to k when k is larger
LIGHT_FIELDS = ["id", "title", "language", "duration", "tags"]  # returned with every search hit
DOC_FIELDS = ["id", "version", "title", "language", "duration", "published_at", "tags", "meta"]
ID_CHUNK = 1000  # ids per `id in [...]` expression
NCL_CHUNK = 500


class _NotLoaded(Exception):
    """The collections were released (e.g. by a restart) and have just been reloaded: retry."""


def is_transient(exc: BaseException) -> bool:
    """Worth retrying (and reconnecting): the server did not answer, or answered "not ready"."""
    if isinstance(exc, (ConnectionError, TimeoutError, OSError, _NotLoaded)):
        return True
    return isinstance(exc, MilvusException) and any(h in str(exc).lower() for h in TRANSIENT_HINTS)


def _reconnectable(exc: BaseException) -> bool:
    """A dead channel (connection refused or lost) rather than a slow server."""
    msg = str(exc).lower()
    return is_transient(exc) and "connect" in msg and not any(h in msg for h in ("deadline", "timeout", "timed out"))


def _f32(value: float) -> float:
    """A FLOAT field read back (float32) as the shortest decimal that round-trips, so 12.3 comes
    back 12.3 and not 12.300000190734863."""
    return float(str(np.float32(value)))


def _light(entity: Mapping[str, Any]) -> dict[str, Any]:
    duration = entity.get("duration", -1)
    return {"title": entity.get("title"), "language": entity.get("language") or None,
            "duration": _f32(duration) if duration is not None and duration >= 0 else None,
            "tags": list(entity.get("tags") or []), "text_lengths": entity.get("text_lengths")}


def _iso(ms: int | None) -> str | None:
    if ms is None or ms < 0:  # -1: no publication date (videos.to_row)
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def stored_document(row: Mapping[str, Any]) -> dict[str, Any]:
    """A Milvus row -> the contract's stored document (STORED_FIELDS)."""
    meta = row.get("meta") or {}
    doc = {
        **_light(row),
        "video_id": row["id"], "version": int(row["version"]), "model_version": meta.get("model_version"),
        "description": meta.get("description"), "published_at": _iso(row.get("published_at")),
        "media_uri": meta.get("media_uri"), "keyframes": meta.get("keyframes", []),
        "segments": meta.get("segments", []), "extra": meta.get("extra", {}), "copies": meta.get("copies", []),
        "transcript": None, "ocr": None,  # only inside the BM25 input (`text`), never separately
    }
    return {k: doc[k] for k in STORED_FIELDS}


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def in_slice(video_id: str, slice_id: int, slices: int) -> bool:
    """Stable slice membership (crc32, not Python's salted `hash`): the same on every call and in
    every process."""
    return zlib.crc32(video_id.encode("utf-8")) % slices == slice_id


# What this backend raises when it cannot answer now (down, timing out, collection missing); the
# retriever degrades a route on these.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (MilvusException,)


class MilvusVideoStore:
    name = "milvus"
    keeps_full_documents = False

    def __init__(self, settings: Settings, *, client: Any = None, timeout_s: float | None = None,
                 dedicated: bool = True) -> None:
        """`client`: an already built client (tests, or a caller sharing one); it is used as is,
        never replaced nor closed. Otherwise the store makes its own (`dedicated`: a channel of
        its own, see `make_client`) on first use and again after a transport failure."""
        self.settings = settings
        self.alias = settings.indexer.collection_prefix
        self.timeout_s = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
        self.dedicated = dedicated
        self.ef_search = EF_SEARCH
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()
        self._ensured: set[str] = set()
        self._lengths: dict[str, bool] = {}  # collection or alias -> has the `text_lengths` field

    # -- connection ----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = make_client(self.settings.milvus, timeout=self.timeout_s, dedicated=self.dedicated)
            return self._client

    def _reset(self) -> None:
        """Forget the channel so the next call reconnects (only a client this store made)."""
        if not self._owns_client:
            return
        with self._lock:
            client, self._client = self._client, None
        close_quietly(client, "milvus")

    def _call(self, fn: Callable[[Any], T]) -> T:
        """One request; a failure that is not the server's own answer (a refused query keeps the
        channel fine) drops the channel so the next call reconnects. A refused connection is
        retried once at once on a new channel: the channel of a restarted server is dead even
        though the server is back (a timeout is not retried: it would only double the wait)."""
        try:
            return fn(self.client)
        except Exception as exc:
            if isinstance(exc, MilvusException) and not is_transient(exc):
                raise
            self._reset()
            if not _reconnectable(exc):
                raise
        return fn(self.client)

    def _retrying(self, fn: Callable[[], T]) -> T:
        cfg = self.settings.indexer

        def attempt() -> T:
            try:
                return fn()
            except Exception as exc:
                if is_transient(exc):
                    self._reset()
                raise

        return with_retries(self.name, cfg.retry_attempts, cfg.retry_max_wait_s, is_transient, attempt)

    def close(self) -> None:
        self._reset()

    def healthy(self) -> bool:
        try:
            self.client.list_collections()
            return True
        except Exception:  # noqa: BLE001 - a health probe: any failure means unhealthy, and never raises
            self._reset()
            return False

    # -- schema and lifecycle ------------------------------------------------------------------
    def physical(self, version: str) -> str:
        return collection_name(self.alias, version)

    def _target(self, version: str | None) -> str:
        return self.alias if version is None else self.physical(version)

    def _has_lengths(self, target: str) -> bool:
        """Collections made before `text_lengths` existed lack it: write and read without it there
        (the fusion gate then treats those videos' text amount as unknown) instead of failing."""
        if target not in self._lengths:
            fields = self._call(lambda c: c.describe_collection(target)).get("fields", [])
            self._lengths[target] = any(f.get("name") == "text_lengths" for f in fields)
        return self._lengths[target]

    def _doc_fields(self, target: str) -> list[str]:
        return [*DOC_FIELDS, "text_lengths"] if self._has_lengths(target) else DOC_FIELDS

    def _light_fields(self, target: str) -> list[str]:
        return [*LIGHT_FIELDS, "text_lengths"] if self._has_lengths(target) else LIGHT_FIELDS

    def ensure(self, version: str, *, alias: bool = False) -> None:
        name = self.physical(version)
        self._call(lambda c: ensure_collection(c, name, self.alias if alias else None))
        self._load(name)
        self._ensured.add(name)

    def _load(self, name: str) -> None:
        def run(c: Any) -> None:
            for target in (name, tombstone_name(name)):
                c.load_collection(target)

        self._call(run)

    def exists(self, version: str) -> bool:
        name = self.physical(version)
        return bool(self._call(lambda c: c.has_collection(name)))

    def drop(self, version: str) -> None:
        """Drops the collection, its tombstones, and an alias pointing at it (Milvus refuses to
        drop an aliased collection; OpenSearch drops the alias with the index, so both agree)."""
        name = self.physical(version)

        def run(c: Any) -> None:
            if c.has_collection(name):
                for alias in c.list_aliases(collection_name=name).get("aliases", []):
                    c.drop_alias(alias=alias)
            for coll in (name, tombstone_name(name)):
                if c.has_collection(coll):
                    c.drop_collection(coll)

        self._call(run)
        self._ensured.discard(name)
        self._lengths.pop(name, None)

    def install(self, version: str) -> dict[str, Any]:
        name = self.physical(version)
        existed = self.exists(version)
        self.ensure(version, alias=True)
        return {"collection": name, "created": not existed, "alias": {self.alias: self.alias_target()}}

    # -- writes --------------------------------------------------------------------------------
    def _stored_versions(self, collection: str, ids: list[str]) -> dict[str, int]:
        """The version of each id this collection holds, live or deleted (tombstone)."""
        found: dict[str, int] = {}
        flt = f"id in {quote_list(ids)}"
        for name in (collection, tombstone_name(collection)):
            for row in self.client.query(name, filter=flt, output_fields=["id", "version"]):
                found[row["id"]] = max(found.get(row["id"], -1), int(row["version"]))
        return found

    def _write_one(self, collection: str, ops: list[Operation], rows: Mapping[str, dict[str, Any]],
                   result: WriteResult) -> None:
        stored = self._stored_versions(collection, [o.video_id for o in ops])
        fresh = [o for o in ops if o.version >= stored.get(o.video_id, -1)]
        result.stale += len(ops) - len(fresh)
        upserts = [rows[o.video_id] for o in fresh if isinstance(o, IndexDoc)]
        tombs = [o for o in fresh if isinstance(o, Tombstone)]
        if upserts:
            self.client.upsert(collection, upserts)
        if tombs:
            self.client.delete(collection, ids=[t.video_id for t in tombs])
            self.client.upsert(tombstone_name(collection),
                               [{"id": t.video_id, "version": t.version, "v": [1.0, 0.0]} for t in tombs])
        result.written += len(fresh)

    def write(self, version: str, ops: Sequence[Operation]) -> WriteResult:
        if not ops:
            return WriteResult()
        collection = self.physical(version)
        result = WriteResult()
        rows: dict[str, dict[str, Any]] = {}
        valid: list[Operation] = []
        for op in ops:  # a document that cannot become a row is refused alone, before any request
            if isinstance(op, IndexDoc):
                try:
                    rows[op.video_id] = to_row(op.for_version(version))
                except Exception as exc:  # noqa: BLE001 - missing vector, bad value: this document's fault
                    result.rejected[op.video_id] = f"cannot build a Milvus row: {type(exc).__name__}: {exc}"[:500]
                    continue
            valid.append(op)
        if not valid:
            return result

        def attempt() -> WriteResult:
            out = WriteResult()
            try:
                if collection not in self._ensured:
                    self.ensure(version)
                if not self._has_lengths(collection):
                    for row in rows.values():
                        row.pop("text_lengths", None)
                self._write_one(collection, valid, rows, out)
            except Exception as exc:
                if is_not_loaded(exc):  # released by a restart: load, then retry
                    self._load(collection)
                    raise _NotLoaded(str(exc)) from exc
                if is_transient(exc):
                    self._reset()
                raise
            return out

        cfg = self.settings.indexer
        try:
            return result.merge(with_retries(self.name, cfg.retry_attempts, cfg.retry_max_wait_s, is_transient, attempt))
        except InfrastructureError:
            raise
        except Exception as exc:  # noqa: BLE001 - a non-transient refusal: find the rows (or pause)
            return result.merge(self._isolate(collection, valid, rows, exc))

    def _isolate(self, collection: str, ops: list[Operation], rows: Mapping[str, dict[str, Any]],
                 exc: Exception) -> WriteResult:
        """A non-transient refusal. Blame documents only when the store is demonstrably fine and
        some rows go through: otherwise it is the store's state, and nothing may be dead-lettered
        (pause instead)."""
        if not self.healthy():
            raise StoreUnavailableError(self.name, f"refused a batch and fails its health check: {exc}") from exc
        log.warning("milvus batch refused, isolating rows error=%s", exc)
        result = WriteResult()
        for op in ops:
            try:
                self._write_one(collection, [op], rows, result)
            except Exception as row_exc:
                if is_transient(row_exc):
                    self._reset()
                    raise StoreUnavailableError(self.name, f"failed while isolating rows: {row_exc}") from row_exc
                result.rejected[op.video_id] = str(row_exc)[:500]
        if len(result.rejected) == len(ops) and len(ops) > 1:
            raise StoreUnavailableError(self.name, f"refused every row of the batch: {exc}") from exc
        return result

    def _delete(self, collection: str, ids: list[str]) -> None:
        self._retrying(lambda: self.client.delete(collection, ids=ids))

    def _upsert(self, collection: str, rows: list[dict[str, Any]]) -> None:
        self._retrying(lambda: self.client.upsert(collection, rows))

    def _query(self, target: str, flt: str, fields: list[str]) -> list[dict[str, Any]]:
        return list(self._call(lambda c: c.query(target, filter=flt, output_fields=fields)))

    def remove(self, version: str, video_ids: Sequence[str]) -> None:
        if not video_ids:
            return
        collection = self.physical(version)
        for chunk in _chunks(list(video_ids), ID_CHUNK):
            self._delete(collection, chunk)

    def refresh(self, version: str | None = None) -> None:
        """Nothing to do: every collection is created with Strong consistency, so a search, count
        or scan already waits for every acknowledged write."""

    def write_ncl(self, biases: Mapping[str, float], version: str | None = None) -> int:
        """Milvus cannot update one field, so each row is read whole and upserted back with its
        new `vec_ncl`. Versions are read again just before the upsert and a row that changed (or
        went) since it was read is skipped: the newer event's own write is authoritative."""
        target = self._target(version)
        n = 0
        for chunk in _chunks(list(biases), NCL_CHUNK):
            flt = f"id in {quote_list(chunk)}"
            rows = self._query(target, flt, ["*"])
            now = {r["id"]: r["version"] for r in self._query(target, flt, ["id", "version"])}
            upserts = []
            for row in rows:
                if now.get(row["id"]) != row["version"]:
                    continue  # changed or deleted since we read it
                row = {k: v for k, v in row.items() if k != "sparse"}  # BM25 output: Milvus recomputes it
                fused = np.asarray(row["vec_fused"], np.float32)
                row["vec_ncl"] = np.append(fused, np.float32(biases[row["id"]])).astype(np.float32).tolist()
                upserts.append(row)
            if upserts:
                self._upsert(target, upserts)
                n += len(upserts)
        return n

    # -- reads ---------------------------------------------------------------------------------
    def bm25(self, text: str, filters: Filters, k: int, version: str | None = None) -> Scored:
        target = self._target(version)
        fields = self._light_fields(target)
        res = self._call(lambda c: c.search(target, data=[text], anns_field="sparse", limit=k, filter=to_expr(filters),
                                            search_params={"metric_type": "BM25"}, output_fields=fields))
        # milvus-lite reports BM25 as a negative distance (more negative = better), Milvus as a
        # positive score; both return best first, so the magnitude is the score.
        return self._scored(res[0], absolute=True)

    def knn(self, field: str, vector: np.ndarray, filters: Filters, k: int, version: str | None = None) -> Scored:
        target = self._target(version)
        fields = self._light_fields(target)
        data = [np.asarray(vector, np.float32).tolist()]
        params = {"metric_type": "IP", "params": {"ef": max(self.ef_search, k)}}
        res = self._call(lambda c: c.search(target, data=data, anns_field=field, limit=k, filter=to_expr(filters),
                                            search_params=params, output_fields=fields))
        return self._scored(res[0])

    @staticmethod
    def _scored(hits: Any, absolute: bool = False) -> Scored:
        scores: dict[str, float] = {}
        docs: dict[str, dict[str, Any]] = {}
        for h in hits:
            distance = float(h["distance"])
            scores[h["id"]] = abs(distance) if absolute else distance
            docs[h["id"]] = _light(h.get("entity") or {})
        return Scored(scores, docs)

    def fetch(self, ids: Sequence[str], version: str | None = None) -> dict[str, dict[str, Any]]:
        target = self._target(version)
        out: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), ID_CHUNK):
            flt = f"id in {quote_list(chunk)}"
            for row in self._query(target, flt, self._doc_fields(target)):
                out[row["id"]] = stored_document(row)
        return out

    def count(self, version: str | None = None) -> int:
        target = self._target(version)
        res = self._call(lambda c: c.query(target, filter="", output_fields=["count(*)"]))
        return int(res[0]["count(*)"])

    def _rows(self, version: str | None, fields: list[str], batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Every row (query_iterator: no offset/limit ceiling). A failure drops the channel."""
        target = self._target(version)
        try:
            yield from iter_rows(self.client, target, fields, batch_size=batch)
        except Exception as exc:
            if not isinstance(exc, MilvusException) or is_transient(exc):
                self._reset()
            raise

    def scan(self, version: str | None = None, *, slice_id: int = 0, slices: int = 1,
             batch: int = 500) -> Iterator[list[dict[str, Any]]]:
        """Milvus has no hash in its expressions, so every slice lists all ids (a light pass), keeps
        its own, and reads just those in full."""
        if slices < 1 or not 0 <= slice_id < slices:
            raise ValueError(f"slice_id {slice_id} is not in [0, {slices})")
        pending: list[str] = []
        for row in self._rows(version, ["id"]):
            if in_slice(row["id"], slice_id, slices):
                pending.append(row["id"])
            if len(pending) >= batch:
                page = list(self.fetch(pending, version).values())
                pending = []
                if page:
                    yield page
        if pending and (page := list(self.fetch(pending, version).values())):
            yield page

    def id_versions(self, version: str | None = None) -> dict[str, tuple[int, str]]:
        return {row["id"]: (int(row["version"]), (row.get("meta") or {}).get("model_version") or "")
                for row in self._rows(version, ["id", "version", "meta"])}

    def vectors(self, field: str = "vec_fused", version: str | None = None) -> dict[str, np.ndarray]:
        out = {}
        for row in self._rows(version, ["id", field]):
            vec = np.asarray(row[field], np.float32)
            if np.any(vec):
                out[row["id"]] = vec
        return out

    # -- alias ---------------------------------------------------------------------------------
    def alias_target(self) -> str | None:
        def run(c: Any) -> str | None:
            # list first: describe_alias on a missing alias raises (and pymilvus logs an error)
            if self.alias not in c.list_aliases().get("aliases", []):
                return None
            return c.describe_alias(alias=self.alias).get("collection_name")

        return self._call(run)

    def swap(self, version: str) -> dict[str, Any]:
        """`alter_alias` is one atomic call; the target is loaded first so the first search
        through the moved alias does not meet a released collection."""
        name = self.physical(version)
        before = self.alias_target()
        self._lengths.pop(self.alias, None)  # the alias may now name a collection of another schema

        def run(c: Any) -> None:
            c.load_collection(name)
            if before is None:
                c.create_alias(collection_name=name, alias=self.alias)
            elif before != name:
                c.alter_alias(collection_name=name, alias=self.alias)

        self._call(run)
        return {"alias": self.alias, "from": before, "to": name}

    def drop_alias(self) -> None:
        def run(c: Any) -> None:
            if self.alias in c.list_aliases().get("aliases", []):
                c.drop_alias(alias=self.alias)

        self._call(run)
