"""Kafka, through the indexer's own source and producer, once per client (`kafka.client`):
keyed produce, commit only what was acknowledged, rewind, dead letters within their budget,
pause with keepalive polling past max.poll.interval.ms, and an unreachable broker classified
as an infrastructure error."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.partitioner.default import murmur2

from tests.integration.kafka_clients import kafka_client, with_client  # noqa: F401 (fixture)
from vidsearch.connector.kafka.config import kafka_client_config
from vidsearch.connector.kafka.producer import make_producer
from vidsearch.connector.messages import DeadLetter, Message
from vidsearch.connector.sources import kafka as kafka_source
from vidsearch.connector.sources.kafka import KafkaSource
from vidsearch.core.errors import Handling, InfrastructureError, classify
from vidsearch.core.settings import Settings

pytestmark = pytest.mark.integration

N_MESSAGES = 1000
FIRST_BATCH = 400

MakeTopics = Callable[..., Settings]


@pytest.fixture
def make_topics(stack: object, settings: Settings, unique_name: str, kafka_client: str) -> Iterator[MakeTopics]:  # noqa: F811
    """Settings for `kafka_client` whose topic and DLQ topic exist (and are deleted afterwards)."""
    admin = AdminClient(kafka_client_config(settings.kafka))
    created: list[str] = []

    def make(partitions: int = 3, **indexer: Any) -> Settings:
        topics = [unique_name, f"{unique_name}.dlq"]
        for fut in admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics]).values():
            fut.result(timeout=30)
        created.extend(topics)
        limits = settings.indexer.limits.model_copy(update=indexer.pop("limits", {}))
        idx = settings.indexer.model_copy(update={
            "topic": unique_name, "dlq_topic": f"{unique_name}.dlq", "group_id": f"{unique_name}-group", "limits": limits, **indexer})
        return with_client(settings.model_copy(update={"indexer": idx}), kafka_client)

    yield make
    if created:
        for fut in admin.delete_topics(created).values():
            fut.result(timeout=30)


def _produce(s: Settings, records: list[tuple[bytes | None, bytes]], topic: str | None = None) -> None:
    producer = make_producer(s.kafka)
    for key, value in records:
        producer.produce(topic or s.indexer.topic, key, value)
    assert producer.flush(60) == []
    producer.close()


def _read(source: KafkaSource, limit: int, idle_s: float = 5.0, batch: int = 100) -> list[list[Message]]:
    """Batches as the runner polls them, until `limit` messages or `idle_s` without any (the
    clock starts once partitions are assigned)."""
    out: list[list[Message]] = []
    got, last, started = 0, time.monotonic(), time.monotonic()
    while got < limit and time.monotonic() - started < 60:
        msgs = source.poll(min(batch, limit - got), 1.0)
        if msgs:
            out.append(msgs)
            got += len(msgs)
            last = time.monotonic()
        elif source.ready() and time.monotonic() - last > idle_s:
            break
        elif not source.ready():
            last = time.monotonic()
    return out


def test_group_commit_and_resume(make_topics: MakeTopics) -> None:
    s = make_topics(partitions=3)
    _produce(s, [(f"video-{i % 37}".encode(), json.dumps({"i": i}).encode()) for i in range(N_MESSAGES)])

    first = KafkaSource(s)
    assert first.client == s.kafka.client
    batches = _read(first, FIRST_BATCH)
    for b in batches:  # each batch "acknowledged by the stores", then committed
        first.commit(b)
    seen = [m for b in batches for m in b]
    assert len(seen) == FIRST_BATCH
    first.close()

    second = KafkaSource(s)
    rest = [m for b in _read(second, N_MESSAGES) for m in b]
    second.close()

    ids = [json.loads(m.value)["i"] for m in seen + rest]
    assert len(rest) == N_MESSAGES - FIRST_BATCH, "the restarted consumer re-read or lost messages"
    assert sorted(ids) == list(range(N_MESSAGES)), "a message was duplicated or lost"

    by_key: dict[bytes, list[Message]] = {}
    for m in seen + rest:
        by_key.setdefault(m.key, []).append(m)
    for key, msgs in by_key.items():
        assert {m.partition for m in msgs} == {(murmur2(key) & 0x7FFFFFFF) % 3}, f"key {key!r} not on its murmur2 partition"
        assert [m.offset for m in msgs] == sorted(m.offset for m in msgs), f"order broken for {key!r}"
    assert {m.partition for m in seen + rest} == {0, 1, 2}


def test_commit_after_ack_and_rewind(make_topics: MakeTopics) -> None:
    s = make_topics(partitions=1)
    _produce(s, [(b"k", json.dumps({"i": i}).encode()) for i in range(30)])
    source = KafkaSource(s)
    for acked in _read(source, 10, batch=10):
        source.commit(acked)
    failed = [m for b in _read(source, 10, batch=10) for m in b]
    assert [m.offset for m in failed] == list(range(10, 20))
    source.rewind(failed)  # the stores did not acknowledge: deliver it again
    again = [m for b in _read(source, 10, batch=10) for m in b]
    assert [m.offset for m in again] == [m.offset for m in failed]
    assert [m.value for m in again] == [m.value for m in failed]
    source.close()  # crash before the retried batch was acknowledged: nothing past `acked` is committed

    restarted = KafkaSource(s)
    resumed = [m for b in _read(restarted, 20, batch=20) for m in b]
    restarted.close()
    assert [m.offset for m in resumed] == list(range(10, 30))


def test_dead_letters_are_published_within_the_budget(make_topics: MakeTopics) -> None:
    s = make_topics(partitions=1, limits={"dlq_max_bytes": 20_000})
    source = KafkaSource(s)
    original = Message(s.indexer.topic, 0, 7, b"vid-7", b"x" * 100_000, [("trace", b"abc")])
    small = Message(s.indexer.topic, 0, 8, b"vid-8", b"{broken", [])
    # the record's own budget is ignored: the DLQ topic's (indexer.limits.dlq_max_bytes) applies
    source.dead_letter([DeadLetter(original, "InvalidEventError", "too big", "parse", max_bytes=900_000),
                        DeadLetter(small, "InvalidEventError", "bad json", "parse")])
    source.close()

    reader = KafkaSource(s, group_id=f"{s.indexer.group_id}-dlq", topic=s.indexer.dlq_topic)
    dead = [m for b in _read(reader, 2) for m in b]
    reader.close()
    assert [m.key for m in dead] == [b"vid-7", b"vid-8"]
    big, broken = (dict(m.headers) for m in dead)
    assert big["x-truncated"] == b"true" and big["x-original-length"] == b"100000"
    assert len(dead[0].value) + sum(len(k) + len(v) for k, v in dead[0].headers) + len(dead[0].key) <= 20_000
    assert big["trace"] == b"abc" and big["x-error-class"] == b"InvalidEventError" and big["x-original-offset"] == b"7"
    assert dead[1].value == b"{broken" and "x-truncated" not in broken and broken["x-error-stage"] == b"parse"


def test_pause_keepalive_keeps_the_partitions(make_topics: MakeTopics) -> None:
    """Paused longer than max.poll.interval.ms (10 s), polling only to stay in the group: the
    consumer keeps its partitions, hands out nothing, and resumes exactly where it stopped."""
    s = make_topics(partitions=3, max_poll_interval_ms=10_000)
    _produce(s, [(f"k{i}".encode(), json.dumps({"i": i}).encode()) for i in range(300)])
    source = KafkaSource(s)
    batch = [m for b in _read(source, 50, batch=50) for m in b]
    source.commit(batch)
    assigned = source.assigned
    assert len(assigned) == 3
    source.pause()
    deadline = time.monotonic() + 14
    while time.monotonic() < deadline:
        source.keepalive(0.0)  # as while a long batch is processed
        time.sleep(0.5)
        source.keepalive(0.5)  # as while the stores are down
    assert source.revocations == 0, "the paused consumer lost its partitions"
    assert source.assigned == assigned
    source.resume()
    rest = [m for b in _read(source, 300) for m in b]
    source.close()
    got = sorted(json.loads(m.value)["i"] for m in batch + rest)
    assert got == list(range(300)), "keepalive lost or duplicated messages fetched before the pause"


def test_unreachable_broker_is_an_infrastructure_error(settings: Settings, kafka_client: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """kafka-python bootstraps when built, confluent connects lazily: either way a broker that
    cannot be reached surfaces as an InfrastructureError (pause and retry), never a data error."""
    from vidsearch.connector.kafka import kafka_python

    monkeypatch.setattr(kafka_python, "BOOTSTRAP_TIMEOUT_MS", 2_000)
    monkeypatch.setattr(kafka_source, "DLQ_FLUSH_S", 2.0)
    dead = with_client(settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"bootstrap_servers": "127.0.0.1:1"})}), kafka_client)
    letter = DeadLetter(Message("t", 0, 0, b"k", b"v"), "InvalidEventError", "bad", "parse")
    with pytest.raises(InfrastructureError) as info:
        source = KafkaSource(dead, group_id="unreachable", topic="unreachable")
        try:
            source.dead_letter([letter])
        finally:
            source.producer.close(0.1)
            source._close()
    assert classify(info.value) is Handling.PAUSE_AND_RETRY
