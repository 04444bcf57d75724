"""`vidsearch bench ingest`: what the pipeline (Kafka + both sinks + commits) costs on top of the
encoders, measured on the same events in the same run.

encoder_only_eps: the pipeline's encode step alone (parse, validate, features, text encoder,
documents) over the events in memory, batch by batch as the consumer would.
pipeline_eps: the same events produced to a fresh topic and consumed by the real indexer into
OpenSearch and Milvus, from its first poll to its last commit.
overhead = encoder_only_eps / pipeline_eps - 1.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidsearch.core.settings import Settings


def _run_case(settings: Settings, name: str, payloads: list[tuple[str, bytes]], text, progress: Callable[[str], None]) -> dict[str, Any]:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from vidsearch.connector.app import build_pipeline, build_runner, make_sinks
    from vidsearch.connector.kafka.config import kafka_client_config
    from vidsearch.connector.messages import Message
    from vidsearch.connector.sources.kafka import KafkaSource

    tag = f"bench_{name}_{uuid.uuid4().hex[:6]}"
    idx = settings.indexer.model_copy(update={
        "topic": tag, "dlq_topic": f"{tag}.dlq", "group_id": f"{tag}-g", "index_prefix": tag.replace("_", "-"),
        "collection_prefix": tag, "feature_store": settings.stack.state_dir / "bench-features" / tag,
    })
    s = settings.model_copy(update={"indexer": idx})
    pipeline = build_pipeline(s, make_sinks(s), text=text)
    batch = idx.batch_max_events
    messages = [Message(tag, 0, i, vid.encode(), p) for i, (vid, p) in enumerate(payloads)]

    progress(f"{name}: encoder only")
    t0 = time.perf_counter()
    for start in range(0, len(messages), batch):
        pipeline.encode(messages[start : start + batch])
    encoder_s = time.perf_counter() - t0

    progress(f"{name}: full pipeline")
    admin = AdminClient(kafka_client_config(s.kafka))
    for fut in admin.create_topics([NewTopic(t, num_partitions=3, replication_factor=1) for t in (tag, f"{tag}.dlq")]).values():
        fut.result(timeout=30)
    producer = Producer({**kafka_client_config(s.kafka), "message.max.bytes": 16 * 1024**2, "linger.ms": 20})
    for vid, p in payloads:
        producer.produce(tag, key=vid.encode(), value=p)
    producer.flush(60)
    runner = build_runner(s, pipeline, KafkaSource(s))
    stats = runner.run(until_idle_s=3)
    runner.source.close()
    n = len(payloads)
    encoder_eps, pipeline_eps = n / encoder_s, n / stats.active_s
    return {
        "events": n,
        "indexed": stats.indexed,
        "dead": stats.dead,
        "encoder_only_eps": round(encoder_eps, 2),
        "pipeline_eps": round(pipeline_eps, 2),
        "overhead": round(encoder_eps / pipeline_eps - 1, 4),
        "pipeline_encode_s": round(stats.encode_s, 3),
        "pipeline_sink_s": round(stats.sink_s, 3),
        "pipeline_active_s": round(stats.active_s, 3),
    }


def run(settings: Settings, n_precomputed: int = 2000, media_rounds: int = 1, progress: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    from vidsearch.encoders.serving import load_text_encoder
    from vidsearch.ops.bench import events as ev
    from vidsearch.ops.datasets.clips import real_clips

    text = load_text_encoder(settings)
    pre = [(f"p{i}", ev.upsert(f"p{i}", 1, seed=i)) for i in range(n_precomputed)]
    clips = real_clips(settings.stack.cache_dir)
    roots = tuple(sorted({c.path.parent for c in clips}))
    media_settings = settings.model_copy(update={"indexer": settings.indexer.model_copy(update={
        "media_policy": settings.indexer.media_policy.model_copy(update={"roots": roots})})})
    media = [(f"m{r}-{i}", ev.upsert(f"m{r}-{i}", 1, features=None, media_uri=str(c.path)))
             for r in range(media_rounds) for i, c in enumerate(clips)]
    return {
        "target_overhead": 0.10,
        "precomputed": _run_case(settings, "pre", pre, text, progress),
        "real_media": _run_case(media_settings, "media", media, text, progress),
    }
