"""Re-feed dead letters: read the DLQ topic and produce each original payload (with its original
key and headers, minus our error headers) back to its original topic, then commit.

Runs on the same `KafkaSource` and producer as the indexer, so it works with either
`kafka.client` and commits each record only after Kafka acknowledged its replay."""

from __future__ import annotations

import time
from typing import Any

from vidsearch.connector.kafka.errors import KafkaUnavailableError
from vidsearch.connector.sources.kafka import KafkaSource
from vidsearch.core.settings import Settings

ERROR_HEADERS = {"x-error-class", "x-error-message", "x-error-stage", "x-attempts", "x-original-topic", "x-original-partition",
                 "x-original-offset", "x-original-sha256", "x-original-length", "x-truncated"}
JOIN_TIMEOUT_S = 30.0  # joining the replay group; the idle clock starts once partitions are assigned


def replay(settings: Settings, topic: str | None = None, limit: int | None = None, idle_s: float = 5.0, group: str = "vidsearch-dlq-replay") -> dict[str, Any]:
    source = KafkaSource(settings, group_id=group, topic=settings.indexer.dlq_topic)
    replayed: dict[str, int] = {}
    reasons: dict[str, int] = {}
    skipped: list[dict[str, Any]] = []  # truncated dead letters: the original must be re-sent by its producer
    started = last = time.monotonic()
    try:
        while limit is None or sum(replayed.values()) < limit:
            batch = source.poll(1, 1.0)
            now = time.monotonic()
            if not batch:
                if not source.ready():
                    last = now
                    if now - started > JOIN_TIMEOUT_S + idle_s:
                        break
                elif now - last >= idle_s:
                    break
                continue
            last = now
            msg = batch[0]
            headers = dict(msg.headers)
            if headers.get("x-truncated") == b"true":  # a cut payload can only fail again: report it, keep going
                skipped.append({"offset": msg.offset, "sha256": (headers.get("x-original-sha256") or b"").decode(),
                                "length": int(headers.get("x-original-length") or 0)})
                source.commit(batch)
                continue
            target = topic or (headers.get("x-original-topic") or settings.indexer.topic.encode()).decode()
            stage = (headers.get("x-error-stage") or b"?").decode()
            keep = [(k, v) for k, v in msg.headers if k not in ERROR_HEADERS]
            keep.append(("x-replayed-from-offset", str(msg.offset).encode()))
            source.producer.produce(target, msg.key, msg.value, keep)
            failures = source.producer.flush(30)
            if failures:
                raise KafkaUnavailableError(f"replayed message not acknowledged by Kafka: {failures[:3]}")
            source.commit(batch)
            replayed[target] = replayed.get(target, 0) + 1
            reasons[stage] = reasons.get(stage, 0) + 1
    finally:
        source.close()
    return {"replayed": sum(replayed.values()), "by_topic": replayed, "by_stage": reasons, "skipped_truncated": skipped}
