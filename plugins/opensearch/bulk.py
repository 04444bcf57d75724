"""`_bulk` writes with external versioning: the store itself refuses an older version (409,
counted as stale) and accepts a replay of the same one (`external_gte`).

A batch is serialised once, op by op, and sent as as many `_bulk` requests as it takes to keep
each under `opensearch.bulk_max_bytes` (OpenSearch refuses a body over its
`http.max_content_length` as a whole, which would stall the batch forever). A document that
alone is over the budget is a data error of that event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import ConnectionTimeout, SerializationError, TransportError
from opensearchpy.serializer import JSONSerializer

from vidsearch.core.documents import IndexDoc, Operation
from vidsearch.plugins.opensearch.videos import to_source

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


class TransientItems(Exception):
    """Some bulk items failed with a retryable status."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (OSConnectionError, ConnectionTimeout, TransientItems)):
        return True
    return isinstance(exc, TransportError) and (exc.status_code in TRANSIENT_STATUS or exc.status_code == "N/A")


def serializer_of(client: OpenSearch) -> Any:
    transport = getattr(client, "transport", None)
    return getattr(transport, "serializer", None) or JSONSerializer()


def bulk_units(serializer: Any, index: str, version: str, ops: Sequence[Operation],
               budget: int) -> tuple[list[tuple[Operation, bytes]], dict[str, str]]:
    """One NDJSON unit (action line, plus the document for an upsert) per op, serialised once,
    with that model version's vectors; ops that cannot be serialised or are over the byte
    budget come back refused (video id -> reason) instead."""
    units: list[tuple[Operation, bytes]] = []
    refused: dict[str, str] = {}
    for op in ops:
        meta = {"_index": index, "_id": op.video_id, "version": op.version, "version_type": "external_gte"}
        lines: list[Any] = ([{"index": meta}, to_source(op.for_version(version))] if isinstance(op, IndexDoc)
                            else [{"delete": meta}])
        try:
            unit = "".join(serializer.dumps(line) + "\n" for line in lines).encode("utf-8")
        except (SerializationError, UnicodeEncodeError, ValueError, TypeError) as exc:
            refused[op.video_id] = f"document cannot be serialised for OpenSearch: {str(exc)[:300]}"
            continue
        if len(unit) > budget:
            refused[op.video_id] = f"document of {len(unit)} bytes exceeds opensearch.bulk_max_bytes={budget}"
            continue
        units.append((op, unit))
    return units, refused


def item_outcome(action: str, info: dict[str, Any]) -> tuple[str, str]:
    """One `_bulk` response item -> ("written" | "stale" | "rejected" | "retry", reason).

    A delete of a missing document is written (its tombstone version is recorded all the same);
    a missing index is the store's state, not the document's."""
    status = info.get("status", 500)
    error = info.get("error") or {}
    error_type = error.get("type", "") if isinstance(error, dict) else str(error)
    if status < 300 or (action == "delete" and status == 404 and error_type != "index_not_found_exception"):
        return "written", ""
    if status == 409:
        return "stale", ""
    if status == 400 and error_type in DATA_ERRORS:
        reason = error.get("reason", "") if isinstance(error, dict) else ""
        return "rejected", f"HTTP {status} {error_type}: {str(reason)[:500]}"
    return "retry", f"HTTP {status} {error_type}"
