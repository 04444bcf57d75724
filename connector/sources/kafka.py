"""Kafka source: a consumer group member with manual commits, pause/rewind, and a DLQ producer.

Offsets are committed synchronously, per partition, to one past the last message of a batch,
and only after every sink acknowledged it and its dead letters were delivered (acks=all).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from vidsearch.core.errors import StoreUnavailableError
from vidsearch.connector.kafka.config import kafka_client_config
from vidsearch.connector.messages import DeadLetter, Message
from vidsearch.core.settings import Settings

log = logging.getLogger(__name__)
# A commit refused because the group moved on: the partition's new owner replays from the last
# committed offset, and the stores are idempotent, so this is not an outage.
REBALANCE_CODES = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._ASSIGNMENT_LOST,
    KafkaError._NO_OFFSET,
}


def _spans(batch: list[Message]) -> dict[tuple[str, int], tuple[int, int]]:
    spans: dict[tuple[str, int], tuple[int, int]] = {}
    for m in batch:
        lo, hi = spans.get((m.topic, m.partition), (m.offset, m.offset))
        spans[(m.topic, m.partition)] = (min(lo, m.offset), max(hi, m.offset))
    return spans


class KafkaSource:
    name = "kafka"

    def __init__(self, settings: Settings, group_id: str | None = None, topic: str | None = None) -> None:
        cfg = settings.indexer
        self.topic = topic or cfg.topic
        self.dlq_topic = cfg.dlq_topic
        self.dlq_max_bytes = cfg.limits.dlq_max_bytes
        base = kafka_client_config(settings.kafka)
        self.consumer = Consumer(
            {
                **base,
                "group.id": group_id or cfg.group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "max.poll.interval.ms": cfg.max_poll_interval_ms,
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 2_000,
                "fetch.max.bytes": 64 * 1024**2,
            }
        )
        self.producer = Producer({**base, "acks": "all", "enable.idempotence": True, "linger.ms": 5, "message.max.bytes": 16 * 1024**2})
        self.assigned: set[tuple[str, int]] = set()
        self._paused = False
        self.revocations = 0  # partitions taken away (rebalance or eviction), for status and tests
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        self.assigned |= {(p.topic, p.partition) for p in parts}
        log.info("partitions assigned partitions=%s", sorted(p.partition for p in parts))
        if self._paused and parts:  # assigned during an outage or a long batch: stay paused
            consumer.assign(parts)
            consumer.pause(parts)

    def _on_revoke(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        self.assigned -= {(p.topic, p.partition) for p in parts}
        self.revocations += len(parts)
        log.info("partitions revoked partitions=%s", sorted(p.partition for p in parts))

    def poll(self, max_events: int, timeout_s: float) -> list[Message]:
        out: list[Message] = []
        for msg in self.consumer.consume(num_messages=max_events, timeout=timeout_s):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka consume error error=%s", err)
                continue
            out.append(Message(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), list(msg.headers() or [])))
        return out

    def commit(self, batch: list[Message]) -> None:
        offsets = [TopicPartition(t, p, hi + 1) for (t, p), (_, hi) in _spans(batch).items() if (t, p) in self.assigned]
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if err is not None and err.code() in REBALANCE_CODES:
                log.warning("commit refused after a rebalance; the new owner replays error=%s", err)
                return
            raise StoreUnavailableError("kafka", f"offset commit failed: {exc}") from exc

    def rewind(self, batch: list[Message]) -> None:
        for (t, p), (lo, _) in _spans(batch).items():
            if (t, p) in self.assigned:
                self.consumer.seek(TopicPartition(t, p, lo))

    def pause(self) -> None:
        self._paused = True
        self.consumer.pause([TopicPartition(t, p) for t, p in self.assigned])

    def resume(self) -> None:
        self._paused = False
        self.consumer.resume([TopicPartition(t, p) for t, p in self.assigned])

    def keepalive(self, timeout_s: float) -> None:
        """Poll while paused: serves rebalances and resets `max.poll.interval.ms`. A message
        that still arrives (fetched before the pause) is handed back by seeking to it."""
        first: dict[tuple[str, int], int] = {}
        for msg in self.consumer.consume(num_messages=100, timeout=timeout_s):
            if msg.error() is None:
                key = (msg.topic(), msg.partition())
                first[key] = min(first.get(key, msg.offset()), msg.offset())
        for (t, p), offset in first.items():
            if (t, p) in self.assigned:
                self.consumer.seek(TopicPartition(t, p, offset))
                self.consumer.pause([TopicPartition(t, p)])

    def dead_letter(self, records: list[DeadLetter]) -> None:
        if not records:
            return
        failures: list[str] = []

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        for rec in records:
            # the budget is the DLQ topic's, so the source (not whoever built the record) sets it
            rec = replace(rec, max_bytes=self.dlq_max_bytes)
            self.producer.produce(self.dlq_topic, key=rec.key(), value=rec.payload(), headers=rec.headers(), on_delivery=delivered)
        remaining = self.producer.flush(30)
        if remaining or failures:
            raise StoreUnavailableError("dlq", f"{remaining} dead letters undelivered, errors: {failures[:3]}")

    def ready(self) -> bool:
        return bool(self.assigned)

    def exhausted(self) -> bool:
        return False

    def status(self) -> dict[str, Any]:
        return {"assigned": sorted(p for _, p in self.assigned), "revocations": self.revocations}

    def close(self) -> None:
        self.producer.flush(10)
        self.consumer.close()
