"""Kafka source: a consumer group member with manual commits, pause/rewind, and a DLQ producer.

Offsets are committed synchronously, per partition, to one past the last message of a batch,
and only after every sink acknowledged it and its dead letters were delivered (acks=all).
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from vidsearch.connector.errors import StoreUnavailableError
from vidsearch.connector.kafka.config import kafka_client_config
from vidsearch.connector.messages import DeadLetter, Message
from vidsearch.ops.settings import Settings

log = logging.getLogger(__name__)


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
        base = kafka_client_config(settings.kafka)
        self.consumer = Consumer(
            {
                **base,
                "group.id": group_id or cfg.group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "max.poll.interval.ms": 900_000,
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 2_000,
                "fetch.max.bytes": 64 * 1024**2,
            }
        )
        self.producer = Producer({**base, "acks": "all", "enable.idempotence": True, "linger.ms": 5, "message.max.bytes": 16 * 1024**2})
        self.assigned: set[tuple[str, int]] = set()
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        self.assigned |= {(p.topic, p.partition) for p in parts}
        log.info("partitions assigned partitions=%s", sorted(p.partition for p in parts))

    def _on_revoke(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        self.assigned -= {(p.topic, p.partition) for p in parts}
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
        if not batch:
            return
        offsets = [TopicPartition(t, p, hi + 1) for (t, p), (_, hi) in _spans(batch).items()]
        self.consumer.commit(offsets=offsets, asynchronous=False)

    def rewind(self, batch: list[Message]) -> None:
        for (t, p), (lo, _) in _spans(batch).items():
            if (t, p) in self.assigned:
                self.consumer.seek(TopicPartition(t, p, lo))

    def pause(self) -> None:
        self.consumer.pause([TopicPartition(t, p) for t, p in self.assigned])

    def resume(self) -> None:
        self.consumer.resume([TopicPartition(t, p) for t, p in self.assigned])

    def dead_letter(self, records: list[DeadLetter]) -> None:
        if not records:
            return
        failures: list[str] = []

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        for rec in records:
            self.producer.produce(self.dlq_topic, key=rec.message.key, value=rec.message.value, headers=rec.headers(), on_delivery=delivered)
        remaining = self.producer.flush(30)
        if remaining or failures:
            raise StoreUnavailableError("dlq", f"{remaining} dead letters undelivered, errors: {failures[:3]}")

    def ready(self) -> bool:
        return bool(self.assigned)

    def exhausted(self) -> bool:
        return False

    def status(self) -> dict[str, Any]:
        return {"assigned": sorted(p for _, p in self.assigned)}

    def close(self) -> None:
        self.producer.flush(10)
        self.consumer.close()
