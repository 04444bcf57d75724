"""Helpers for the indexer's integration tests: per-test settings, producing, reading both stores."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from opensearchpy import helpers

from vidsearch.connector.kafka.config import kafka_client_config
from vidsearch.core.settings import Settings
from vidsearch.plugins.milvus.client import make_client as milvus_client
from vidsearch.plugins.milvus.videos import collection_name
from vidsearch.plugins.opensearch.client import make_client as os_client
from vidsearch.plugins.opensearch.videos import index_name

Event = tuple[str, str, int, bytes]  # (video_id, op, version, payload)


def indexer_settings(settings: Settings, name: str, tmp_path: Path, media_roots: tuple[Path, ...] = (), **extra) -> Settings:
    idx = settings.indexer.model_copy(
        update={
            "topic": name,
            "dlq_topic": f"{name}.dlq",
            "group_id": f"{name}-group",
            "index_prefix": name.replace("_", "-"),
            "collection_prefix": name,
            "model_version": "m1",
            "feature_store": tmp_path / "features",
            "batch_max_events": 100,
            "batch_max_s": 0.5,
            "unavailable_backoff_s": 1.0,
            "retry_attempts": 3,
            "retry_max_wait_s": 0.5,
            "media_policy": settings.indexer.media_policy.model_copy(update={"roots": media_roots}),
            **extra,
        }
    )
    return settings.model_copy(update={"indexer": idx})


def create_topics(settings: Settings, partitions: int = 3) -> None:
    admin = AdminClient(kafka_client_config(settings.kafka))
    topics = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in (settings.indexer.topic, settings.indexer.dlq_topic)]
    for fut in admin.create_topics(topics).values():
        fut.result(timeout=30)


def produce(settings: Settings, events: list[Event], keys: list[bytes | None] | None = None) -> None:
    producer = Producer({**kafka_client_config(settings.kafka), "enable.idempotence": True, "message.max.bytes": 16 * 1024**2, "linger.ms": 20})
    for i, (vid, _op, _v, payload) in enumerate(events):
        key = keys[i] if keys is not None else vid.encode()
        producer.produce(settings.indexer.topic, key=key, value=payload)
        if i % 500 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def expected_live(events: list[Event]) -> dict[str, int]:
    """The highest version of each video wins; a delete at that version removes it."""
    best: dict[str, tuple[int, str]] = {}
    for vid, op, version, _ in events:
        if vid not in best or version >= best[vid][0]:
            best[vid] = (version, op)
    return {vid: v for vid, (v, op) in best.items() if op == "upsert"}


def opensearch_state(settings: Settings) -> dict[str, int]:
    client = os_client(settings.opensearch)
    index = index_name(settings.indexer.index_prefix, settings.indexer.model_version)
    client.indices.refresh(index=index)
    hits = helpers.scan(client, index=index, query={"query": {"match_all": {}}}, _source=["version"])
    out: dict[str, int] = {}
    for h in hits:
        assert h["_id"] not in out, f"duplicate {h['_id']}"
        out[h["_id"]] = h["_source"]["version"]
    assert client.count(index=index)["count"] == len(out)
    return out


def milvus_state(settings: Settings) -> dict[str, int]:
    name = collection_name(settings.indexer.collection_prefix, settings.indexer.model_version)
    for attempt in range(5):
        # milvus-lite's gRPC server answers an idle channel's keepalive pings with GOAWAY
        # ("too many pings"); like the sink, reconnect and retry.
        client = milvus_client(settings.milvus)
        try:
            client.load_collection(name)  # a reopened milvus-lite file serves collections released
            rows = client.query(name, filter='id != ""', output_fields=["id", "version"], limit=16384)
            total = client.query(name, filter='id != ""', output_fields=["count(*)"])[0]["count(*)"]
            break
        except Exception:
            if attempt == 4:
                raise
            time.sleep(1.0)
        finally:
            client.close()
    out = {r["id"]: int(r["version"]) for r in rows}
    assert total == len(rows) == len(out), f"milvus holds {total} rows for {len(out)} ids"
    return out


def committed_total(settings: Settings) -> int:
    consumer = Consumer({**kafka_client_config(settings.kafka), "group.id": settings.indexer.group_id})
    try:
        parts = [TopicPartition(settings.indexer.topic, p) for p in range(3)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
    finally:
        consumer.close()


def dlq_messages(settings: Settings, expected: int, timeout_s: float = 30.0) -> list:
    consumer = Consumer({**kafka_client_config(settings.kafka), "group.id": f"{settings.indexer.topic}-dlq-reader", "auto.offset.reset": "earliest"})
    consumer.subscribe([settings.indexer.dlq_topic])
    out = []
    stop = threading.Event()
    timer = threading.Timer(timeout_s, stop.set)
    timer.start()
    try:
        while len(out) < expected and not stop.is_set():
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                out.append(msg)
    finally:
        timer.cancel()
        consumer.close()
    return out
