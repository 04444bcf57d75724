"""Kafka source: a consumer group member with manual commits, pause/rewind, and a DLQ producer.

Offsets are committed synchronously, per partition, to one past the last message of a batch,
and only after every sink acknowledged it and its dead letters were delivered (acks=all).

`KafkaSource(settings)` builds the implementation `kafka.client` names (confluent-kafka or
kafka-python, in `vidsearch.connector.kafka`); the rules above, the pause state, keepalive,
rewind and the dead-letter budget live here, once, so both clients keep the same semantics.
A client implements only the few primitives at the bottom of the class.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Self, cast

from vidsearch.connector.kafka.errors import KafkaUnavailableError
from vidsearch.connector.kafka.producer import make_producer
from vidsearch.connector.messages import DeadLetter, Message
from vidsearch.connector.sources.base import EventProducer
from vidsearch.core.settings import Settings

log = logging.getLogger(__name__)

Partition = tuple[str, int]
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 2_000
FETCH_MAX_BYTES = 64 * 1024**2
DLQ_FLUSH_S = 30.0


def _spans(batch: list[Message]) -> dict[Partition, tuple[int, int]]:
    spans: dict[Partition, tuple[int, int]] = {}
    for m in batch:
        lo, hi = spans.get((m.topic, m.partition), (m.offset, m.offset))
        spans[(m.topic, m.partition)] = (min(lo, m.offset), max(hi, m.offset))
    return spans


def source_class(client: str) -> type[KafkaSource]:
    if client == "kafka-python":
        from vidsearch.connector.kafka.kafka_python import KafkaPythonSource

        return KafkaPythonSource
    from vidsearch.connector.kafka.confluent import ConfluentSource

    return ConfluentSource


class KafkaSource:
    """`KafkaSource(settings, group_id, topic)` returns the `kafka.client` implementation."""

    name = "kafka"
    client = "?"
    producer: EventProducer

    def __new__(cls, settings: Settings, group_id: str | None = None, topic: str | None = None) -> Self:
        impl = source_class(settings.kafka.client) if cls is KafkaSource else cls
        return cast(Self, super().__new__(impl))

    def __init__(self, settings: Settings, group_id: str | None = None, topic: str | None = None) -> None:
        cfg = settings.indexer
        self.topic = topic or cfg.topic
        self.group_id = group_id or cfg.group_id
        self.dlq_topic = cfg.dlq_topic
        self.dlq_max_bytes = cfg.limits.dlq_max_bytes
        self.max_poll_interval_ms = cfg.max_poll_interval_ms
        # Replaced, never mutated: rebalance callbacks may run on a client thread (kafka-python)
        # while the runner iterates a snapshot.
        self.assigned: frozenset[Partition] = frozenset()
        self._paused = False
        self.revocations = 0  # partitions taken away (rebalance or eviction), for status and tests
        self._committed: dict[Partition, int] = {}  # last offset this process committed, for lag
        self.producer = make_producer(settings.kafka)
        try:
            self._open(settings)
        except BaseException:
            self.producer.close(1.0)
            raise

    # -- rebalance bookkeeping, called by the client's callbacks ---------------------------

    def _assigned_now(self, parts: list[Partition]) -> None:
        self.assigned = self.assigned | set(parts)
        log.info("partitions assigned client=%s partitions=%s", self.client, sorted(p for _, p in parts))
        if self._paused and parts:  # assigned during an outage or a long batch: stay paused
            self._pause_partitions(list(parts))

    def _revoked_now(self, parts: list[Partition]) -> None:
        self.assigned = self.assigned - set(parts)
        for tp in parts:
            self._committed.pop(tp, None)
        self.revocations += len(parts)
        if parts:
            log.info("partitions revoked client=%s partitions=%s", self.client, sorted(p for _, p in parts))

    # -- Source ----------------------------------------------------------------------------

    def poll(self, max_events: int, timeout_s: float) -> list[Message]:
        """Up to `max_events` messages, waiting up to `timeout_s` for them to accumulate."""
        return self._fetch(max_events, timeout_s)

    def commit(self, batch: list[Message]) -> None:
        """Raises KafkaUnavailableError when Kafka did not take the offsets; returns quietly when
        the group moved on (the partition's new owner replays from the last committed offset,
        and the stores are idempotent, so that is not an outage)."""
        assigned = self.assigned
        offsets = {tp: hi + 1 for tp, (_, hi) in _spans(batch).items() if tp in assigned}
        if offsets:
            self._commit(offsets)
            self._committed.update(offsets)

    def lag(self) -> dict[str, int]:
        """Messages behind the end of each assigned partition, counted from the last offset this
        process committed there (before its first commit, from the consumer's position). Asks
        the brokers for the end offsets: call it every few seconds, not per batch."""
        parts = sorted(self.assigned)
        if not parts:
            return {}
        ends = self._end_offsets(parts)
        out: dict[str, int] = {}
        for tp in parts:
            done = self._committed.get(tp)
            if done is None:
                done = self._position(tp)
            if tp in ends and done is not None:
                out[str(tp[1])] = max(0, ends[tp] - done)
        return out

    def rewind(self, batch: list[Message]) -> None:
        assigned = self.assigned
        for tp, (lo, _) in _spans(batch).items():
            if tp in assigned:
                self._seek(tp, lo)

    def pause(self) -> None:
        self._paused = True
        self._pause_partitions(list(self.assigned))

    def resume(self) -> None:
        self._paused = False
        self._resume_partitions(list(self.assigned))

    def keepalive(self, timeout_s: float) -> None:
        """Poll while paused: serves rebalances and resets `max.poll.interval.ms`. A message
        that still arrives (fetched before the pause) is handed back by seeking to it."""
        first: dict[Partition, int] = {}
        for msg in self._poll_paused(timeout_s):
            key = (msg.topic, msg.partition)
            first[key] = min(first.get(key, msg.offset), msg.offset)
        assigned = self.assigned
        for tp, offset in first.items():
            if tp in assigned:
                self._seek(tp, offset)
                self._pause_partitions([tp])

    def dead_letter(self, records: list[DeadLetter]) -> None:
        if not records:
            return
        for rec in records:
            # the budget is the DLQ topic's, so the source (not whoever built the record) sets it
            rec = replace(rec, max_bytes=self.dlq_max_bytes)
            self.producer.produce(self.dlq_topic, rec.key(), rec.payload(), rec.headers())
        failures = self.producer.flush(DLQ_FLUSH_S)
        if failures:
            raise KafkaUnavailableError(f"{len(failures)} dead letters undelivered, errors: {failures[:3]}", store="dlq")

    def ready(self) -> bool:
        return bool(self.assigned)

    def exhausted(self) -> bool:
        return False

    def status(self) -> dict[str, Any]:
        return {"client": self.client, "assigned": sorted(p for _, p in self.assigned), "revocations": self.revocations}

    def close(self) -> None:
        try:
            self.producer.close(10.0)
        finally:
            self._close()

    # -- what each client implements -------------------------------------------------------

    def _open(self, settings: Settings) -> None:
        """Create the consumer (manual commits, earliest, the timeouts above) and subscribe with
        callbacks that call `_assigned_now` / `_revoked_now`. Bad settings: KafkaConfigError."""
        raise NotImplementedError

    def _fetch(self, max_events: int, timeout_s: float) -> list[Message]:
        """Never raises for a broker problem (logs it): the runner polls outside its retry loop."""
        raise NotImplementedError

    def _poll_paused(self, timeout_s: float) -> list[Message]:
        raise NotImplementedError

    def _commit(self, offsets: dict[Partition, int]) -> None:
        raise NotImplementedError

    def _seek(self, tp: Partition, offset: int) -> None:
        raise NotImplementedError

    def _pause_partitions(self, parts: list[Partition]) -> None:
        raise NotImplementedError

    def _resume_partitions(self, parts: list[Partition]) -> None:
        raise NotImplementedError

    def _end_offsets(self, parts: list[Partition]) -> dict[Partition, int]:
        raise NotImplementedError

    def _position(self, tp: Partition) -> int | None:
        """The next offset the consumer will read, or None while it has none."""
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError
