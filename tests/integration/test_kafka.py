"""Kafka: keyed produce, consumer-group commit, and resume after a restart with nothing lost."""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from vidsearch.connector.kafka.config import kafka_client_config
from vidsearch.core.settings import Settings

pytestmark = pytest.mark.integration

N_MESSAGES = 1000
FIRST_BATCH = 400


def _consumer(settings: Settings, group: str) -> Consumer:
    return Consumer(
        {
            **kafka_client_config(settings.kafka),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


def _read(consumer: Consumer, limit: int, idle_s: float = 5.0) -> list[dict[str, Any]]:
    """Poll one message at a time until `limit` messages or `idle_s` without any."""
    out: list[dict[str, Any]] = []
    while len(out) < limit:
        msg = consumer.poll(idle_s)
        if msg is None:
            break
        assert msg.error() is None, msg.error()
        out.append({"key": msg.key().decode(), "partition": msg.partition(), **json.loads(msg.value())})
    return out


def test_group_commit_and_resume(stack: object, settings: Settings, unique_name: str) -> None:
    topic = unique_name
    admin = AdminClient(kafka_client_config(settings.kafka))
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(timeout=30)
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 3

    producer = Producer({**kafka_client_config(settings.kafka), "enable.idempotence": True})
    for i in range(N_MESSAGES):
        producer.produce(topic, key=f"video-{i % 37}", value=json.dumps({"i": i}))
    assert producer.flush(30) == 0

    group = f"{topic}-group"
    first = _consumer(settings, group)
    first.subscribe([topic])
    seen = _read(first, FIRST_BATCH, idle_s=15.0)
    assert len(seen) == FIRST_BATCH
    first.commit(asynchronous=False)
    first.close()

    second = _consumer(settings, group)
    second.subscribe([topic])
    rest = _read(second, N_MESSAGES)
    second.close()

    ids = [m["i"] for m in seen + rest]
    assert len(rest) == N_MESSAGES - FIRST_BATCH, "the restarted consumer re-read or lost messages"
    assert sorted(ids) == list(range(N_MESSAGES)), "a message was duplicated or lost"

    by_key: dict[str, list[dict[str, Any]]] = {}
    for m in seen + rest:
        by_key.setdefault(m["key"], []).append(m)
    used_partitions = set()
    for key, msgs in by_key.items():
        assert len({m["partition"] for m in msgs}) == 1, f"key {key} spread over partitions"
        assert [m["i"] for m in msgs] == sorted(m["i"] for m in msgs), f"order broken for {key}"
        used_partitions.add(msgs[0]["partition"])
    assert used_partitions == {0, 1, 2}
    admin.delete_topics([topic])[topic].result(timeout=30)
