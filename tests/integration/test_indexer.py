"""The streaming indexer against the real stack: Kafka in, Milvus and OpenSearch out."""

from __future__ import annotations

import json
import math
import re
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.integration.indexer_helpers import (
    Event,
    create_topics,
    dlq_messages,
    expected_live,
    indexer_settings,
    milvus_state,
    opensearch_state,
    produce,
)
from vidsearch.connector.app import build_pipeline, build_runner, make_writer
from vidsearch.connector.metrics import Metrics
from vidsearch.connector.runner import Runner
from vidsearch.connector.sources.kafka import KafkaSource
from vidsearch.core.settings import Settings, load_settings
from vidsearch.encoders.serving import load_text_encoder
from vidsearch.ops.bench import events as ev
from vidsearch.ops.bench.events import features_b64, synthetic_features
from vidsearch.ops.datasets.clips import wheel_clips

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
# The gradio wheel's clips, unpacked into this user's cache (/var/cache/vidsearch only for root).
CLIPS = load_settings().stack.cache_dir / "media" / "gradio"


@pytest.fixture(scope="module", autouse=True)
def _clips_unpacked(settings: Settings) -> None:
    assert wheel_clips(settings.stack.cache_dir)[0].path.is_relative_to(CLIPS.parent)


@pytest.fixture(scope="session")
def text_encoder(settings: Settings):
    return load_text_encoder(settings)


def make_runner(settings: Settings, text_encoder, group: str | None = None, metrics: Metrics | None = None) -> Runner:
    pipeline = build_pipeline(settings, make_writer(settings), metrics, text=text_encoder)
    return build_runner(settings, pipeline, KafkaSource(settings, group_id=group))


def stream(n_videos: int, n_events: int, seed: int = 0) -> list[Event]:
    """Upserts, re-versions (some arriving stale) and deletes over `n_videos` ids."""
    rng = np.random.default_rng(seed)
    versions = dict.fromkeys(range(n_videos), 0)
    events: list[Event] = []
    for i in range(n_events):
        v = int(rng.integers(n_videos)) if i >= n_videos else i
        roll = rng.random()
        if roll < 0.08 and versions[v] > 0:
            version = versions[v] - 1  # stale: older than what was already sent
        else:
            versions[v] += 1
            version = versions[v]
        vid = f"vid-{v}"
        if roll > 0.93:
            events.append((vid, "delete", version, ev.delete(vid, version)))
        else:
            events.append((vid, "upsert", version, ev.upsert(vid, version, seed=v)))
    return events


def test_2000_events_reach_both_stores(stack, settings: Settings, unique_name: str, tmp_path: Path, text_encoder) -> None:
    s = indexer_settings(settings, unique_name, tmp_path, media_roots=(CLIPS,))
    create_topics(s)
    events = stream(1500, 2000)
    media = [(f"clip-{p.stem}", "upsert", 1, ev.upsert(f"clip-{p.stem}", 1, features=None, media_uri=str(p)))
             for p in (CLIPS / "b.mp4", CLIPS / "a.mp4")]
    produce(s, events + media)
    runner = make_runner(s, text_encoder)
    stats = runner.run(until_idle_s=5)
    runner.source.close()
    want = expected_live(events + media)
    assert stats.dead == 0 and stats.events == len(events) + len(media)
    assert opensearch_state(s) == want
    assert milvus_state(s) == want
    from vidsearch.connector.app import feature_store

    stored = feature_store(s).get("clip-a")
    assert stored is not None and len(stored.keyframe_times) >= 3 and stored.ocr, "real media was not encoded"


BAD_KINDS = [
    ("bad json", lambda i: b'{"schema_version": 1, "op": "upsert",'),
    ("not an object", lambda i: b"[1, 2, 3]"),
    ("wrong types", lambda i: json.dumps({"schema_version": 1, "op": "upsert", "video_id": f"b{i}", "version": "x", "title": 5}).encode()),
    ("huge title", lambda i: ev.upsert(f"b{i}", 1, title="t" * 10_000_000)),
    ("NaN literal", lambda i: ev.upsert(f"b{i}", 1).replace(b'"duration": ', b'"duration": NaN, "x": ')),
    ("NaN vectors", lambda i: ev.upsert(f"b{i}", 1, features=features_b64(_nan_features(i)))),
    ("path traversal", lambda i: ev.upsert(f"b{i}", 1, features=None, media_uri=f"{CLIPS}/../../../../etc/passwd")),
    ("outside roots", lambda i: ev.upsert(f"b{i}", 1, features=None, media_uri="/etc/hostname")),
    ("private url", lambda i: ev.upsert(f"b{i}", 1, features=None, media_uri="http://10.0.0.7/video.mp4")),
    ("unknown schema", lambda i: ev.upsert(f"b{i}", 1).replace(b'"schema_version": 1', b'"schema_version": 7')),
    ("unknown op", lambda i: ev.upsert(f"b{i}", 1).replace(b'"op": "upsert"', b'"op": "merge"')),
    ("bad base64", lambda i: ev.upsert(f"b{i}", 1, features="!!not-base64!!")),
    ("corrupt media", lambda i: ev.upsert(f"b{i}", 1, features=None, media_uri=str(CLIPS.parent / "bad" / "noise.mp4"))),
]


def _nan_features(i: int):
    feats = synthetic_features(i)
    feats.frame_bridge[0, 3] = math.nan
    return feats


def test_malformed_events_are_dead_lettered(stack, settings: Settings, unique_name: str, tmp_path: Path, text_encoder) -> None:
    bad_dir = CLIPS.parent / "bad"
    bad_dir.mkdir(exist_ok=True)
    (bad_dir / "noise.mp4").write_bytes(np.random.default_rng(1).bytes(64 * 1024))
    s = indexer_settings(settings, unique_name, tmp_path, media_roots=(CLIPS, bad_dir))
    create_topics(s)
    events: list[Event] = []
    good: list[Event] = []
    for i in range(200):
        kind, make = BAD_KINDS[i % len(BAD_KINDS)]
        events.append((f"b{i}", kind, 1, make(i)))
        g = (f"g{i}", "upsert", 1, ev.upsert(f"g{i}", 1, seed=i))
        events.append(g)
        good.append(g)
    produce(s, events)
    runner = make_runner(s, text_encoder)
    stats = runner.run(until_idle_s=5)
    runner.source.close()
    assert stats.dead == 200 and stats.indexed == 200
    dead = dlq_messages(s, 200)
    assert len(dead) == 200
    for msg in dead:
        headers = dict(msg.headers())
        assert headers["x-error-class"] and headers["x-error-message"] and headers["x-error-stage"]
        assert headers["x-original-topic"].decode() == s.indexer.topic
        assert int(headers["x-original-offset"]) >= 0
    stages = {dict(m.headers())["x-error-stage"].decode() for m in dead}
    assert {"parse", "schema", "features", "media_policy", "decode"} <= stages, stages
    reasons = " | ".join(dict(m.headers())["x-error-message"].decode() for m in dead)
    for needle in ("malformed JSON", "..", "outside the allowed roots", "http(s) media is disabled", "unknown schema_version", "NaN", "unknown op"):
        assert needle in reasons, needle
    assert opensearch_state(s) == expected_live(good) == milvus_state(s)


@pytest.mark.slow  # ~50 s: waits for two consumer-group rebalances
def test_two_consumers_split_the_partitions(stack, settings: Settings, unique_name: str, tmp_path: Path, text_encoder) -> None:
    s = indexer_settings(settings, unique_name, tmp_path)
    create_topics(s)
    runners = [make_runner(s, text_encoder) for _ in range(2)]
    threads = [threading.Thread(target=r.run, kwargs={"until_idle_s": 30}) for r in runners]
    for t in threads:
        t.start()
    def split() -> list[set]:
        return [set(r.source.assigned) for r in runners]

    # Wait for a settled group: both members hold partitions, none twice, all three covered,
    # unchanged over a second (a snapshot mid-rebalance can show a member empty-handed).
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        first = split()
        time.sleep(1.0)
        if first == split() and all(first) and not first[0] & first[1] and len(first[0] | first[1]) == 3:
            break
    parts = split()
    assert parts[0] and parts[1] and not parts[0] & parts[1] and len(parts[0] | parts[1]) == 3, parts
    events = [(f"v{i}", "upsert", 1, ev.upsert(f"v{i}", 1, seed=i)) for i in range(1200)]
    produce(s, events)
    for t in threads:
        t.join(timeout=300)
    for r in runners:
        r.source.close()
    counts = [r.stats.events for r in runners]
    assert sum(counts) == 1200 and min(counts) > 0, counts
    assert opensearch_state(s) == expected_live(events) == milvus_state(s)


def test_metrics_endpoint(stack, settings: Settings, unique_name: str, tmp_path: Path, text_encoder) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = indexer_settings(settings, unique_name, tmp_path)
    create_topics(s)
    metrics = Metrics()
    metrics.serve(port)
    produce(s, [("m1", "upsert", 1, ev.upsert("m1", 1)), ("m2", "upsert", 1, b"{oops")], keys=[b"m1", b"m2"])
    runner = make_runner(s, text_encoder, metrics=metrics)
    runner.run(until_idle_s=3)
    runner.source.close()
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "vidsearch_events_in_total 2.0" in body
    assert 'vidsearch_events_out_total{outcome="indexed"} 1.0' in body
    assert 'vidsearch_dlq_total{stage="parse"} 1.0' in body
    # every partition of the topic was drained and committed: nothing behind on any of them
    lags = re.findall(r'vidsearch_consumer_lag\{partition="(\d+)"\} (\S+)', body)
    assert lags and {float(v) for _, v in lags} == {0.0}, body
