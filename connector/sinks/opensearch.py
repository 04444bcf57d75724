"""OpenSearch sink: one `_bulk` per batch with external versioning, so the store itself refuses
an older version (409, counted as stale) and accepts a replay of the same one (external_gte)."""

from __future__ import annotations

import logging
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import ConnectionTimeout, TransportError

from vidsearch.connector.documents import IndexDoc, Operation
from vidsearch.connector.sinks.retry import with_retries
from vidsearch.connector.sinks.base import VersionSource, WriteResult, static_versions
from vidsearch.ops.settings import Settings
from vidsearch.plugins.opensearch.client import make_client
from vidsearch.plugins.opensearch.videos import ensure_index, index_name, to_source

log = logging.getLogger(__name__)
TRANSIENT_STATUS = {429, 500, 502, 503, 504}
# Only these item errors are the document's fault (dead-letter it). Anything else, such as an
# index not yet recovered after a restart or a cluster block, is the store's state: retry, and
# if it persists, pause. Losing nothing beats never stalling.
DATA_ERRORS = {
    "mapper_parsing_exception",
    "document_parsing_exception",
    "strict_dynamic_mapping_exception",
    "illegal_argument_exception",
    "parse_exception",
}


class _TransientItems(Exception):
    """Some bulk items failed with a retryable status."""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, (OSConnectionError, ConnectionTimeout, _TransientItems)):
        return True
    return isinstance(exc, TransportError) and (exc.status_code in TRANSIENT_STATUS or exc.status_code == "N/A")


class OpenSearchSink:
    name = "opensearch"

    def __init__(self, settings: Settings, client: OpenSearch | None = None, versions: VersionSource | None = None) -> None:
        cfg = settings.indexer
        self.settings = settings
        self.client = client or make_client(settings.opensearch, max_retries=0)
        self._versions = versions or static_versions(settings)
        self._ensured: set[str] = set()
        self.alias = cfg.index_prefix

    @property
    def indices(self) -> list[str]:
        """Current version first, then the extra write targets (read each batch: a re-embed or a
        swap reaches a running indexer without a restart)."""
        return [index_name(self.settings.indexer.index_prefix, v) for v in self._versions()]

    def ensure(self) -> None:
        for i, index in enumerate(self.indices):
            ensure_index(self.client, index, self.alias if i == 0 else None)
            self._ensured.add(index)

    def _actions(self, ops: list[Operation]) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = []
        versions = self._versions()
        if not {index_name(self.settings.indexer.index_prefix, v) for v in versions} <= self._ensured:
            self.ensure()
        for version in versions:
            index = index_name(self.settings.indexer.index_prefix, version)
            for op in ops:
                meta = {"_index": index, "_id": op.video_id, "version": op.version, "version_type": "external_gte"}
                if isinstance(op, IndexDoc):
                    body += [{"index": meta}, to_source(op.for_version(version))]
                else:
                    body.append({"delete": meta})
        return body

    def write(self, ops: list[Operation]) -> WriteResult:
        if not ops:
            return WriteResult()
        result = WriteResult()
        pending = ops

        def attempt() -> None:
            nonlocal pending
            resp = self.client.bulk(body=self._actions(pending), request_timeout=self.settings.opensearch.timeout_s)
            retry: dict[str, Operation] = {}
            by_id = {o.video_id: o for o in pending}
            for item in resp["items"]:
                action, info = next(iter(item.items()))
                status, vid = info.get("status", 500), info.get("_id", "")
                op = by_id.get(vid)
                error = info.get("error") or {}
                error_type = error.get("type", "") if isinstance(error, dict) else str(error)
                if status < 300 or (action == "delete" and status == 404 and error_type != "index_not_found_exception"):
                    result.written += 1
                elif status == 409:
                    result.stale += 1
                elif status == 400 and error_type in DATA_ERRORS:
                    result.rejected[vid] = f"HTTP {status} {error_type}: {str(error.get('reason', ''))[:500]}"
                elif op is not None:
                    retry[vid] = op
            if retry:
                pending = list(retry.values())
                raise _TransientItems(f"{len(retry)} items failed with a retryable status")

        cfg = self.settings.indexer
        with_retries(self.name, cfg.retry_attempts, cfg.retry_max_wait_s, _transient, attempt)
        return result

    def remove(self, video_ids: list[str]) -> None:
        body = [{"delete": {"_index": index, "_id": vid}} for index in self.indices for vid in video_ids]
        if body:
            self.client.bulk(body=body)

    def healthy(self) -> bool:
        """Answering HTTP is not enough after a restart: the target indices must have recovered."""
        try:
            health = self.client.cluster.health(index=",".join(self.indices), request_timeout=5)
            return health.get("status") in ("green", "yellow")
        except Exception:  # health probe: any failure means unhealthy
            return False
