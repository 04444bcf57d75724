"""Milvus sink. Milvus has no conditional write, so the version rule is applied here: read the
stored versions (live rows and tombstones) of the batch's ids, drop operations older than what
is stored, then upsert rows and delete-with-tombstone. Replays are idempotent (primary key)."""

from __future__ import annotations

import json
import logging

from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException
from vidsearch.core.documents import IndexDoc, Operation, Tombstone
from vidsearch.core.errors import StoreUnavailableError
from vidsearch.connector.sinks.base import VersionSource, WriteResult, static_versions
from vidsearch.core.retry import with_retries
from vidsearch.core.settings import Settings
from vidsearch.plugins.milvus.client import make_client
from vidsearch.plugins.milvus.videos import (
    collection_name,
    ensure_collection,
    to_row,
    tombstone_name,
)

log = logging.getLogger(__name__)
TRANSIENT_HINTS = ("unavailable", "deadline", "connect", "timeout", "timed out", "closed", "refused", "not ready", "rpc")
# After a restart Milvus serves collections "released" until someone loads them again.
NOT_LOADED_HINTS = ("released", "not loaded", "call load()")


class _NotLoaded(Exception):
    """The collections were released (e.g. by a restart) and have just been reloaded: retry."""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError, OSError, _NotLoaded)):
        return True
    return isinstance(exc, MilvusException) and any(h in str(exc).lower() for h in TRANSIENT_HINTS)


class MilvusSink:
    name = "milvus"

    def __init__(self, settings: Settings, client: MilvusClient | None = None, versions: VersionSource | None = None) -> None:
        cfg = settings.indexer
        self.settings = settings
        self._client = client
        self._versions = versions or static_versions(settings)
        self._ensured: set[str] = set()
        self.alias = cfg.collection_prefix

    def _targets(self) -> list[tuple[str, str]]:
        """(model version, collection) pairs, current version first, then the extra write targets
        (see the OpenSearch sink). The collection is derived from its version in this one place so
        that every write path sends each collection its own version's vectors."""
        prefix = self.settings.indexer.collection_prefix
        return [(v, collection_name(prefix, v)) for v in self._versions()]

    @property
    def collections(self) -> list[str]:
        return [collection for _, collection in self._targets()]

    @property
    def client(self) -> MilvusClient:
        # Connect lazily and reconnect after a failure: a Milvus restart invalidates the channel.
        if self._client is None:
            self._client = make_client(self.settings.milvus, dedicated=True)
        return self._client

    def _reset(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing a broken channel may fail; it is being replaced anyway
                pass
        self._client = None

    def ensure(self) -> None:
        for i, name in enumerate(self.collections):
            ensure_collection(self.client, name, self.alias if i == 0 else None)
        self._load()
        self._ensured.update(self.collections)

    def _load(self) -> None:
        for name in self.collections:
            for target in (name, tombstone_name(name)):
                self.client.load_collection(target)

    def _stored_versions(self, collection: str, ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        flt = f"id in {json.dumps(ids)}"
        for name in (collection, tombstone_name(collection)):
            for row in self.client.query(name, filter=flt, output_fields=["id", "version"]):
                found[row["id"]] = max(found.get(row["id"], -1), int(row["version"]))
        return found

    def _write_one(self, target: tuple[str, str], ops: list[Operation], result: WriteResult) -> None:
        """Write `ops` to one (version, collection) target, with that version's vectors."""
        version, collection = target
        stored = self._stored_versions(collection, [o.video_id for o in ops])
        fresh = [o for o in ops if o.version >= stored.get(o.video_id, -1)]
        result.stale += len(ops) - len(fresh)
        rows = [to_row(o.for_version(version)) for o in fresh if isinstance(o, IndexDoc)]
        tombs = [o for o in fresh if isinstance(o, Tombstone)]
        if rows:
            self.client.upsert(collection, rows)
        if tombs:
            self.client.delete(collection, ids=[t.video_id for t in tombs])
            self.client.upsert(tombstone_name(collection), [{"id": t.video_id, "version": t.version, "v": [1.0, 0.0]} for t in tombs])
        result.written += len(fresh)

    def write(self, ops: list[Operation]) -> WriteResult:
        if not ops:
            return WriteResult()
        cfg = self.settings.indexer

        def attempt() -> WriteResult:
            result = WriteResult()
            try:
                targets = self._targets()
                if not {collection for _, collection in targets} <= self._ensured:
                    self.ensure()
                for target in targets:
                    self._write_one(target, ops, result)
            except Exception as exc:
                if isinstance(exc, MilvusException) and any(h in str(exc) for h in NOT_LOADED_HINTS):
                    self._load()
                    raise _NotLoaded(str(exc)) from exc
                if _transient(exc):
                    self._reset()
                raise
            return result

        try:
            return with_retries(self.name, cfg.retry_attempts, cfg.retry_max_wait_s, _transient, attempt)
        except MilvusException as exc:
            return self._isolate(ops, exc)

    def _isolate(self, ops: list[Operation], exc: MilvusException) -> WriteResult:
        """A non-transient refusal. Blame documents only when the store is demonstrably fine and
        some rows go through: otherwise it is the store's state, and nothing may be dead-lettered
        (pause instead)."""
        if not self.healthy():
            raise StoreUnavailableError(self.name, f"refused a batch and fails its health check: {exc}") from exc
        log.warning("milvus batch refused, isolating rows error=%s", exc)
        result = WriteResult()
        for op in ops:
            try:
                for target in self._targets():
                    self._write_one(target, [op], result)
            except MilvusException as row_exc:
                result.rejected[op.video_id] = str(row_exc)[:500]
        if len(result.rejected) == len(ops) and len(ops) > 1:
            raise StoreUnavailableError(self.name, f"refused every row of the batch: {exc}") from exc
        return result

    def remove(self, video_ids: list[str]) -> None:
        for collection in self.collections:
            self.client.delete(collection, ids=video_ids)

    def healthy(self) -> bool:
        try:
            self.client.list_collections()
            return True
        except Exception:  # health probe: any failure means unhealthy
            self._reset()
            return False
