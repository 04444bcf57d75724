"""OpenSearch sink: `_bulk` requests with external versioning, so the store itself refuses an
older version (409, counted as stale) and accepts a replay of the same one (external_gte).

A batch is serialised once, action by action, and sent as as many `_bulk` requests as it takes
to keep each under `opensearch.bulk_max_bytes` (OpenSearch refuses a body over its
`http.max_content_length` as a whole, which would stall the batch forever). A document that
alone is over the budget is a data error of that event."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import ConnectionTimeout, SerializationError, TransportError
from opensearchpy.serializer import JSONSerializer

from vidsearch.core.documents import IndexDoc, Operation
from vidsearch.core.retry import with_retries
from vidsearch.connector.sinks.base import VersionSource, WriteResult, static_versions
from vidsearch.core.settings import Settings
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


def plan_bulk(sizes: Sequence[int], max_bytes: int) -> list[tuple[int, int]]:
    """Greedy, order-preserving split of items (their byte sizes) into [start, end) spans, each
    at most `max_bytes` in all. An item over the budget by itself raises ValueError."""
    spans: list[tuple[int, int]] = []
    start, used = 0, 0
    for i, size in enumerate(sizes):
        if size > max_bytes:
            raise ValueError(f"item {i} of {size} bytes exceeds the {max_bytes}-byte budget")
        if used + size > max_bytes:
            spans.append((start, i))
            start, used = i, 0
        used += size
    if start < len(sizes):
        spans.append((start, len(sizes)))
    return spans


def split_bulk(items: Sequence[str], max_bytes: int) -> list[str]:
    """NDJSON items (one action, with its document if any, each line ending in a newline) ->
    `_bulk` bodies of at most `max_bytes` UTF-8 bytes each, items never split or reordered."""
    spans = plan_bulk([len(item.encode("utf-8")) for item in items], max_bytes)
    return ["".join(items[a:b]) for a, b in spans]


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

    def _units(self, ops: list[Operation]) -> tuple[list[tuple[Operation, bytes]], dict[str, str]]:
        """One NDJSON unit per (target index, op), serialised once. An op whose document cannot
        be serialised or is over the byte budget (for any index) is refused for all of them."""
        versions = self._versions()
        if not {index_name(self.settings.indexer.index_prefix, v) for v in versions} <= self._ensured:
            self.ensure()
        transport = getattr(self.client, "transport", None)
        serializer = getattr(transport, "serializer", None) or JSONSerializer()
        budget = self.settings.opensearch.bulk_max_bytes
        units: list[tuple[Operation, bytes]] = []
        refused: dict[str, str] = {}
        for version in versions:
            index = index_name(self.settings.indexer.index_prefix, version)
            for op in ops:
                if op.video_id in refused:
                    continue
                meta = {"_index": index, "_id": op.video_id, "version": op.version, "version_type": "external_gte"}
                lines: list[Any] = [{"index": meta}, to_source(op.for_version(version))] if isinstance(op, IndexDoc) else [{"delete": meta}]
                try:
                    unit = "".join(serializer.dumps(line) + "\n" for line in lines).encode("utf-8")
                except (SerializationError, UnicodeEncodeError, ValueError, TypeError) as exc:
                    refused[op.video_id] = f"document cannot be serialised for OpenSearch: {str(exc)[:300]}"
                    continue
                if len(unit) > budget:
                    refused[op.video_id] = f"document of {len(unit)} bytes exceeds opensearch.bulk_max_bytes={budget}"
                    continue
                units.append((op, unit))
        return [(op, unit) for op, unit in units if op.video_id not in refused], refused

    def write(self, ops: list[Operation]) -> WriteResult:
        if not ops:
            return WriteResult()
        result = WriteResult()
        pending = ops

        def attempt() -> None:
            nonlocal pending
            units, refused = self._units(pending)
            for vid, reason in refused.items():
                log.warning("opensearch refused a document before sending video_id=%s reason=%s", vid, reason)
                result.rejected[vid] = reason
            retry: dict[str, Operation] = {}
            by_id = {o.video_id: o for o in pending}
            spans = plan_bulk([len(unit) for _, unit in units], self.settings.opensearch.bulk_max_bytes)
            for a, b in spans:
                try:
                    resp = self.client.bulk(body=b"".join(unit for _, unit in units[a:b]), request_timeout=self.settings.opensearch.timeout_s)
                except Exception:
                    # This request and the later ones are unacknowledged; the earlier ones are done.
                    left = {op.video_id: op for op, _ in units[a:]}
                    pending = list({**retry, **left}.values())
                    raise
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
            pending = list(retry.values())
            if retry:
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
