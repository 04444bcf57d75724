"""Re-feed dead letters: read the DLQ topic and produce each original payload (with its original
key and headers, minus our error headers) back to its original topic, then commit."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, Producer

from vidsearch.core.errors import StoreUnavailableError
from vidsearch.connector.kafka.config import kafka_client_config
from vidsearch.core.settings import Settings

ERROR_HEADERS = {"x-error-class", "x-error-message", "x-error-stage", "x-attempts", "x-original-topic", "x-original-partition",
                 "x-original-offset", "x-original-sha256", "x-original-length", "x-truncated"}


def replay(settings: Settings, topic: str | None = None, limit: int | None = None, idle_s: float = 5.0, group: str = "vidsearch-dlq-replay") -> dict[str, Any]:
    base = kafka_client_config(settings.kafka)
    consumer = Consumer({**base, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    producer = Producer({**base, "acks": "all", "enable.idempotence": True})
    consumer.subscribe([settings.indexer.dlq_topic])
    replayed: dict[str, int] = {}
    reasons: dict[str, int] = {}
    skipped: list[dict[str, Any]] = []  # truncated dead letters: the original must be re-sent by its producer
    try:
        while limit is None or sum(replayed.values()) < limit:
            msg = consumer.poll(idle_s)
            if msg is None:
                break
            if msg.error():
                continue
            headers = dict((k, v) for k, v in (msg.headers() or []))
            if headers.get("x-truncated") == b"true":  # a cut payload can only fail again: report it, keep going
                skipped.append({"offset": msg.offset(), "sha256": (headers.get("x-original-sha256") or b"").decode(),
                                "length": int(headers.get("x-original-length") or 0)})
                consumer.commit(message=msg, asynchronous=False)
                continue
            target = topic or (headers.get("x-original-topic") or settings.indexer.topic.encode()).decode()
            stage = (headers.get("x-error-stage") or b"?").decode()
            keep = [(k, v) for k, v in (msg.headers() or []) if k not in ERROR_HEADERS]
            keep.append(("x-replayed-from-offset", str(msg.offset()).encode()))
            producer.produce(target, key=msg.key(), value=msg.value(), headers=keep)
            if producer.flush(30):
                raise StoreUnavailableError("kafka", "replayed message not acknowledged by Kafka")
            consumer.commit(message=msg, asynchronous=False)
            replayed[target] = replayed.get(target, 0) + 1
            reasons[stage] = reasons.get(stage, 0) + 1
    finally:
        consumer.close()
    return {"replayed": sum(replayed.values()), "by_topic": replayed, "by_stage": reasons, "skipped_truncated": skipped}
