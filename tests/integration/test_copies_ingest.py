"""Same-source search at ingest, through the real stack: Kafka events with precomputed features go
through the indexer into OpenSearch, Milvus and the Milvus frame index; with the copy check on,
a re-upload of catalogue footage is tagged (`copies` in both stores) and announced on the copy
topic, an unrelated video is not, and a delete takes the video's frames out of the frame index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Consumer

from tests.integration.command_helpers import milvus_rows, os_docs
from tests.integration.indexer_helpers import Event, create_topics, indexer_settings, produce
from vidsearch.connector.app import build_pipeline, build_runner, make_writer
from vidsearch.connector.kafka.config import kafka_client_config
from vidsearch.connector.sources.kafka import KafkaSource
from vidsearch.core.settings import Settings
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.fingerprint import load_fingerprinter
from vidsearch.encoders.serving import load_text_encoder
from vidsearch.ops.bench import events as ev
from vidsearch.ops.bench.events import features_b64, synthetic_features
from vidsearch.plugins.backends import open_frame_store
from vidsearch.plugins.milvus.videos import collection_name
from vidsearch.plugins.opensearch.videos import index_name

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
KEYFRAMES = 4


def _event(vid: str, seed: int, feats: VideoFeatures | None = None) -> Event:
    body = json.loads(ev.upsert(vid, 1, seed=seed))
    body["features"] = features_b64(feats or synthetic_features(seed, keyframes=KEYFRAMES))
    return (vid, "upsert", 1, json.dumps(body).encode())


def _copy_of(seed: int, frames: slice, extra: int, rng: np.random.Generator) -> VideoFeatures:
    """An upload whose keyframes include `frames` of catalogue video `seed` (a re-upload with a
    cut, slightly re-encoded) between `extra` unrelated keyframes."""
    src = synthetic_features(seed, keyframes=KEYFRAMES).frame_features[frames]
    copied = src + 0.001 * rng.standard_normal(src.shape).astype(np.float32)
    feats = synthetic_features(20_000 + seed, keyframes=len(copied) + extra)
    own = feats.frame_features[: extra]
    feats.frame_features = np.concatenate([own[: extra // 2], copied, own[extra // 2:]]).astype(np.float32)
    return feats


def _copy_events(s: Settings, expected: int) -> list[dict]:
    consumer = Consumer({**kafka_client_config(s.kafka), "group.id": f"{s.indexer.topic}-copies-reader",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([s.copies.topic])
    out: list[dict] = []
    try:
        for _ in range(60):
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                out.append(json.loads(msg.value()))
            if len(out) >= expected and msg is None:
                break
    finally:
        consumer.close()
    return out


@pytest.fixture(scope="module")
def text_encoder(settings: Settings):  # noqa: ANN201
    return load_text_encoder(settings)


def _run(s: Settings, text_encoder) -> None:  # noqa: ANN001
    pipeline = build_pipeline(s, make_writer(s), text=text_encoder)
    runner = build_runner(s, pipeline, KafkaSource(s))
    try:
        runner.run(until_idle_s=5)
    finally:
        runner.source.close()
        pipeline.close()


def test_ingest_tags_copies_in_both_stores_and_publishes_them(stack, settings: Settings, unique_name: str,
                                                               tmp_path: Path, text_encoder) -> None:
    s = indexer_settings(settings, unique_name, tmp_path)
    s = s.model_copy(update={"copies": s.copies.model_copy(update={"check_at_ingest": True, "topic": f"{unique_name}.copies"})})
    create_topics(s)
    produce(s, [_event(f"r{i}", i) for i in range(30)])
    _run(s, text_encoder)

    rng = np.random.default_rng(0)
    produce(s, [_event("c-full", 105, _copy_of(5, slice(0, 4), 0, rng)),
                _event("c-part", 109, _copy_of(9, slice(1, 3), 2, rng)),
                ("unrelated", "upsert", 1, ev.upsert("unrelated", 1, seed=777))])
    _run(s, text_encoder)

    index = index_name(s.indexer.index_prefix, s.indexer.model_version)
    in_os = {k: v.get("copies") for k, v in os_docs(s, index, ["copies"]).items()}
    rows = milvus_rows(s, collection_name(s.indexer.collection_prefix, s.indexer.model_version), ["meta"])
    in_milvus = {k: r["meta"].get("copies") for k, r in rows.items()}
    for tagged in (in_os, in_milvus):
        assert tagged["c-full"] == ["r5"] and tagged["c-part"] == ["r9"] and tagged["unrelated"] == []
        assert all(tagged[f"r{i}"] == [] for i in range(30))  # the catalogue itself was unique

    events = _copy_events(s, 2)
    assert sorted(e["video_id"] for e in events) == ["c-full", "c-part"]
    by_id = {e["video_id"]: e for e in events}
    full = by_id["c-full"]["matches"][0]
    assert full["reference_id"] == "r5" and full["segments"] and full["segments"][0]["score"] > 0.5  # a margin over the frame's background
    assert by_id["c-part"]["matches"][0]["reference_id"] == "r9"

    fp = load_fingerprinter()
    frames = open_frame_store(s, fp.version, fp.dim)
    try:
        assert frames.count() == 30 * KEYFRAMES + 4 + 4 + 2  # every keyframe of every video
        assert len(frames.frames(["r5"])["r5"].times) == KEYFRAMES
        produce(s, [("r5", "delete", 2, ev.delete("r5", 2))])
        _run(s, text_encoder)
        assert "r5" not in frames.frames(["r5"]) and frames.count() == 29 * KEYFRAMES + 10
    finally:
        frames.close()
