"""confluent-kafka (librdkafka) implementation of the Kafka source and producer."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from vidsearch.connector.kafka.config import check_files, kafka_client_config
from vidsearch.connector.kafka.errors import KafkaConfigError, KafkaUnavailableError
from vidsearch.connector.kafka.producer import MAX_MESSAGE_BYTES
from vidsearch.connector.messages import Message
from vidsearch.connector.sources.kafka import (
    FETCH_MAX_BYTES,
    HEARTBEAT_INTERVAL_MS,
    SESSION_TIMEOUT_MS,
    KafkaSource,
    Partition,
)
from vidsearch.core.settings import KafkaSettings, Settings

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


def is_rebalance(exc: BaseException) -> bool:
    """True for a commit refused because this member no longer owns the partitions."""
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError) else None
    return err is not None and err.code() in REBALANCE_CODES


def _build(factory: Any, conf: dict[str, Any]) -> Any:
    """librdkafka only fails construction for settings it refuses (it connects lazily)."""
    try:
        return factory(conf)
    except (KafkaException, ValueError, TypeError) as exc:
        raise KafkaConfigError(f"confluent-kafka refused the kafka settings: {exc}") from exc


class ConfluentProducer:
    def __init__(self, settings: KafkaSettings, linger_ms: int = 5) -> None:
        check_files(settings)
        self._failures: list[str] = []
        self._closed = False
        self._producer = _build(Producer, {
            **kafka_client_config(settings),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": linger_ms,
            "message.max.bytes": MAX_MESSAGE_BYTES,
            "partitioner": "murmur2_random",  # the Java client's (and kafka-python's) key -> partition
        })

    def _delivered(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self._failures.append(str(err))

    def produce(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> None:
        for _ in range(2):
            try:
                self._producer.produce(topic, key=key, value=value, headers=headers or None, on_delivery=self._delivered)
                return
            except BufferError:  # the local queue is full: serve delivery reports, then retry once
                self._producer.poll(1.0)
            except KafkaException as exc:
                self._failures.append(str(exc))
                return
        self._failures.append("local producer queue full")

    def flush(self, timeout_s: float) -> list[str]:
        remaining = self._producer.flush(timeout_s)
        failures, self._failures = self._failures, []
        if remaining:
            failures.append(f"{remaining} records not acknowledged within {timeout_s:g}s")
        return failures

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush, give up what is left, then destroy the librdkafka handle. Dropping it matters:
        a live handle refreshes metadata for every topic it produced to, and with the broker's
        auto-creation on that re-creates a DLQ topic an operator (or a test) just deleted."""
        if self._closed:
            return
        self._closed = True
        if self._producer.flush(timeout_s):  # what is left now is given up: let the client go
            self._producer.purge()
            self._producer.flush(0)
        closer = getattr(self._producer, "close", None)  # Producer.close: newer confluent-kafka only
        if closer is not None:
            closer()


class ConfluentSource(KafkaSource):
    client = "confluent"

    def _open(self, settings: Settings) -> None:
        check_files(settings.kafka)
        self.consumer = _build(Consumer, {
            **kafka_client_config(settings.kafka),
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "max.poll.interval.ms": self.max_poll_interval_ms,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
            "fetch.max.bytes": FETCH_MAX_BYTES,
        })
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        if self._paused and parts:  # librdkafka assigns after this callback: assign now to pause
            consumer.assign(parts)
        self._assigned_now([(p.topic, p.partition) for p in parts])

    def _on_revoke(self, _consumer: Consumer, parts: list[TopicPartition]) -> None:
        self._revoked_now([(p.topic, p.partition) for p in parts])

    def _messages(self, max_events: int, timeout_s: float) -> list[Message]:
        out: list[Message] = []
        for msg in self.consumer.consume(num_messages=max_events, timeout=timeout_s):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka consume error error=%s", err)
                continue
            out.append(Message(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), list(msg.headers() or [])))
        return out

    def _fetch(self, max_events: int, timeout_s: float) -> list[Message]:
        return self._messages(max_events, timeout_s)

    def _poll_paused(self, timeout_s: float) -> list[Message]:
        return self._messages(100, timeout_s)

    def _commit(self, offsets: dict[Partition, int]) -> None:
        try:
            self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
        except KafkaException as exc:
            if is_rebalance(exc):
                log.warning("commit refused after a rebalance; the new owner replays error=%s", exc)
                return
            raise KafkaUnavailableError(f"offset commit failed: {exc}") from exc

    def _seek(self, tp: Partition, offset: int) -> None:
        try:
            self.consumer.seek(TopicPartition(tp[0], tp[1], offset))
        except KafkaException as exc:  # taken away meanwhile: its new owner reads from the commit
            log.warning("seek failed partition=%s offset=%s error=%s", tp, offset, exc)

    def _pause_partitions(self, parts: list[Partition]) -> None:
        self.consumer.pause([TopicPartition(t, p) for t, p in parts])

    def _resume_partitions(self, parts: list[Partition]) -> None:
        self.consumer.resume([TopicPartition(t, p) for t, p in parts])

    def _end_offsets(self, parts: list[Partition]) -> dict[Partition, int]:
        return {tp: self.consumer.get_watermark_offsets(TopicPartition(*tp), timeout=2.0, cached=False)[1] for tp in parts}

    def _position(self, tp: Partition) -> int | None:
        [pos] = self.consumer.position([TopicPartition(*tp)])
        return pos.offset if pos.offset >= 0 else None  # OFFSET_INVALID (-1001) before the first fetch

    def _close(self) -> None:
        self.consumer.close()
