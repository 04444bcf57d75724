"""Source-agnostic message and dead-letter records.

A dead letter must always be deliverable, or the partition it came from stalls: the original
payload plus our error headers can exceed the broker's `message.max.bytes` (Kafka's default is
about 1 MB) even when the original fitted. So a dead letter is cut to `max_bytes` in all (value,
key and headers), and always says how long the original value was and its SHA-256, so an
operator can match a truncated record with the producer's copy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

DLQ_MAX_BYTES = 900_000  # default of `indexer.limits.dlq_max_bytes`
ERROR_MESSAGE_MAX_BYTES = 4_000
KEY_SHARE = 8  # the key may take at most 1/8 of the budget, the original headers 1/4
HEADERS_SHARE = 4
# Headers this record sets; copies of them in the original (a replayed dead letter) are dropped.
OWN_HEADERS = frozenset({
    "x-error-class", "x-error-message", "x-error-stage", "x-attempts", "x-original-topic",
    "x-original-partition", "x-original-offset", "x-original-sha256", "x-original-length", "x-truncated",
})


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def _clip_utf8(text: str, max_bytes: int) -> bytes:
    """At most `max_bytes` of UTF-8, cut on a character boundary (lone surrogates become '?')."""
    return text.encode("utf-8", "replace")[:max_bytes].decode("utf-8", "ignore").encode("utf-8")


def _header_bytes(headers: list[tuple[str, bytes]]) -> int:
    return sum(len(k.encode("utf-8", "replace")) + len(v or b"") for k, v in headers)


@dataclass(frozen=True)
class _Record:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class DeadLetter:
    message: Message
    error_class: str
    reason: str
    stage: str
    attempts: int = 1
    max_bytes: int = DLQ_MAX_BYTES

    @cached_property
    def _record(self) -> _Record:
        """Budget: our headers first (bounded), then the key and the original headers (each
        capped at a share), and the value gets what is left."""
        m = self.message
        value = m.value or b""
        own = [
            ("x-error-class", _clip_utf8(self.error_class, 200)),
            ("x-error-message", _clip_utf8(self.reason, ERROR_MESSAGE_MAX_BYTES)),
            ("x-error-stage", _clip_utf8(self.stage, 200)),
            ("x-attempts", str(self.attempts).encode()),
            ("x-original-topic", _clip_utf8(m.topic, 300)),
            ("x-original-partition", str(m.partition).encode()),
            ("x-original-offset", str(m.offset).encode()),
            ("x-original-sha256", hashlib.sha256(value).hexdigest().encode()),
            ("x-original-length", str(len(value)).encode()),
        ]
        truncated = False
        key = m.key
        if key is not None and len(key) > self.max_bytes // KEY_SHARE:
            key, truncated = key[: self.max_bytes // KEY_SHARE], True
        kept: list[tuple[str, bytes]] = []
        room = self.max_bytes // HEADERS_SHARE
        for k, v in m.headers:
            if k in OWN_HEADERS:
                continue
            size = _header_bytes([(k, v)])
            if size > room:
                truncated = True
                continue
            kept.append((k, v))
            room -= size
        marker = [("x-truncated", b"true")]
        used = len(key or b"") + _header_bytes(kept) + _header_bytes(own) + _header_bytes(marker)
        budget = max(0, self.max_bytes - used)
        if len(value) > budget:
            value, truncated = value[:budget], True
        headers = kept + own + (marker if truncated else [])
        return _Record(key, value if m.value is not None else None, headers)

    def key(self) -> bytes | None:
        """The original key, cut if it alone would take more than its share of the budget."""
        return self._record.key

    def payload(self) -> bytes | None:
        """The original value, cut so the whole record stays under `max_bytes`."""
        return self._record.value

    @property
    def truncated(self) -> bool:
        return ("x-truncated", b"true") in self._record.headers

    def headers(self) -> list[tuple[str, bytes]]:
        """Original headers (those that fit), then the error and provenance headers."""
        return list(self._record.headers)

    def size(self) -> int:
        """Bytes of key, value and headers together: at most `max_bytes`."""
        rec = self._record
        return len(rec.key or b"") + len(rec.value or b"") + _header_bytes(rec.headers)
