"""The indexer under failure: kill -9 mid-stream, SIGTERM, a store down for 20 s, DLQ replay,
and the embedded default (file source into a milvus-lite file, no servers)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.indexer_helpers import (
    committed_total,
    create_topics,
    dlq_messages,
    expected_live,
    indexer_settings,
    milvus_state,
    opensearch_state,
    produce,
)
from tests.integration.kafka_clients import kafka_client, with_client  # noqa: F401 (fixture)
from tests.integration.test_indexer import make_runner, stream, text_encoder  # noqa: F401 (fixture)
from vidsearch.core.settings import Settings
from vidsearch.ops.bench import events as ev

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]
VIDSEARCH = str(Path(sys.executable).parent / "vidsearch")


def cli_env(s: Settings) -> dict[str, str]:
    idx = s.indexer
    return {
        **os.environ,
        "VIDSEARCH_INDEXER__TOPIC": idx.topic,
        "VIDSEARCH_INDEXER__DLQ_TOPIC": idx.dlq_topic,
        "VIDSEARCH_INDEXER__GROUP_ID": idx.group_id,
        "VIDSEARCH_INDEXER__INDEX_PREFIX": idx.index_prefix,
        "VIDSEARCH_INDEXER__COLLECTION_PREFIX": idx.collection_prefix,
        "VIDSEARCH_INDEXER__MODEL_VERSION": idx.model_version,
        "VIDSEARCH_INDEXER__FEATURE_STORE": str(idx.feature_store),
        "VIDSEARCH_INDEXER__BATCH_MAX_EVENTS": "100",
        "VIDSEARCH_KAFKA__CLIENT": s.kafka.client,
        # onnxruntime text encoder: starts in a second, so restarts stay cheap
        "VIDSEARCH_ENCODERS__BACKEND": "onnx",
    }


def test_kill_9_five_times(stack, settings: Settings, unique_name: str, tmp_path: Path, kafka_client: str) -> None:  # noqa: F811
    from vidsearch.encoders.onnx.serve import ensure_exported

    ensure_exported(settings, text_graph="fp32")
    s = with_client(indexer_settings(settings, unique_name, tmp_path), kafka_client)
    create_topics(s)
    events = stream(3000, 5000, seed=7)
    produce(s, events)
    env = cli_env(s)
    rng = random.Random(11)
    progress = []
    for _ in range(5):
        before = committed_total(s)
        proc = subprocess.Popen([VIDSEARCH, "ingest", "--source", "kafka", "--json"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 90  # start-up plus the rebalance that evicts the killed member
        while committed_total(s) <= before and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 1.5))  # land the kill at a random point mid-batch
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        progress.append(committed_total(s))
    assert all(b > a for a, b in zip([0, *progress], progress)), f"a run made no progress before its kill: {progress}"
    assert progress[-1] < len(events), "the stream finished before the last kill; kills did not land mid-stream"
    final = subprocess.run([VIDSEARCH, "ingest", "--source", "kafka", "--until-idle", "6", "--json"], env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    assert committed_total(s) == len(events)
    want = expected_live(events)
    assert opensearch_state(s) == want
    assert milvus_state(s) == want


def test_sigterm_finishes_the_batch_and_commits(stack, settings: Settings, unique_name: str, tmp_path: Path, kafka_client: str) -> None:  # noqa: F811
    s = with_client(indexer_settings(settings, unique_name, tmp_path), kafka_client)
    create_topics(s)
    events = [(f"v{i}", "upsert", 1, ev.upsert(f"v{i}", 1, seed=i)) for i in range(3000)]
    produce(s, events)
    proc = subprocess.Popen([VIDSEARCH, "ingest", "--source", "kafka", "--json"], env=cli_env(s), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while committed_total(s) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    report = json.loads(out)
    assert 0 < report["events"] <= len(events)
    assert committed_total(s) == report["events"], "SIGTERM left processed events uncommitted (or committed unprocessed ones)"
    # ...and the stores hold exactly what was committed: every committed event is in both stores
    # (the last batch was finished and written, not cut off), and nothing beyond it was written
    os_docs, mv_docs = opensearch_state(s), milvus_state(s)
    assert len(os_docs) == report["events"], "OpenSearch does not hold exactly the committed events"
    assert mv_docs == os_docs, "the two stores disagree after SIGTERM"
    assert set(os_docs) <= {vid for vid, *_ in events} and set(os_docs.values()) == {1}


@pytest.mark.parametrize("service", ["opensearch", "milvus"])
def test_store_down_for_20s(service: str, stack, settings: Settings, unique_name: str, tmp_path: Path, text_encoder, kafka_client: str) -> None:  # noqa: F811
    # The outage (20 s) outlasts max.poll.interval.ms (10 s, the least librdkafka allows with a
    # 10 s session timeout): the consumer must keep its partitions by polling while paused.
    s = with_client(indexer_settings(settings, unique_name, tmp_path, batch_max_events=50, max_poll_interval_ms=10_000), kafka_client)
    create_topics(s)
    events = [(f"v{i}", "upsert", 1, ev.upsert(f"v{i}", 1, seed=i)) for i in range(4000)]
    produce(s, events)
    runner = make_runner(s, text_encoder)
    thread = threading.Thread(target=runner.run, kwargs={"until_idle_s": 10})
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while committed_total(s) < 300 and time.monotonic() < deadline:
            time.sleep(0.1)
        stack.process(service).stop(30)
        time.sleep(3)  # the batch in flight when the store died either failed or was committed
        frozen = committed_total(s)
        time.sleep(17)
        assert committed_total(s) == frozen, f"offsets advanced while {service} was down"
        assert frozen < len(events), "the stream finished before the outage"
        assert runner.stats.pauses >= 1
        assert runner.source.revocations == 0, "the consumer lost its partitions during the outage"
    finally:
        stack.up()
    thread.join(timeout=400)
    runner.source.close()
    assert committed_total(s) == len(events)
    want = expected_live(events)
    assert opensearch_state(s) == want
    assert milvus_state(s) == want


def test_dlq_replay_refeeds_the_original_payloads(stack, settings: Settings, unique_name: str, tmp_path: Path, text_encoder, kafka_client: str) -> None:  # noqa: F811
    s = with_client(indexer_settings(settings, unique_name, tmp_path), kafka_client)
    create_topics(s)
    produce(s, [("x1", "upsert", 1, b"{broken"), ("x2", "upsert", 1, ev.upsert("x2", 1))], keys=[b"x1", b"x2"])
    runner = make_runner(s, text_encoder)
    runner.run(until_idle_s=3)
    runner.source.close()
    env = cli_env(s)
    res = subprocess.run([VIDSEARCH, "dlq", "replay", "--topic", f"{s.indexer.topic}.retry", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert report["replayed"] == 1 and report["by_stage"] == {"parse": 1}
    retry = s.model_copy(update={"indexer": s.indexer.model_copy(update={"dlq_topic": f"{s.indexer.topic}.retry"})})
    msgs = dlq_messages(retry, 1)
    assert msgs[0].value() == b"{broken" and msgs[0].key() == b"x1"
    assert "x-error-class" not in dict(msgs[0].headers() or [])


def test_embedded_file_source_into_milvus_lite(settings: Settings, tmp_path: Path) -> None:
    """The README's embedded default: no servers, a JSONL file into a milvus-lite file."""
    events = [(f"f{i}", "upsert", 1, ev.upsert(f"f{i}", 1, seed=i)) for i in range(40)] + [("f3", "delete", 2, ev.delete("f3", 2))]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(p for *_, p in events) + b"\nnot json\n")
    env = {
        **os.environ,
        "VIDSEARCH_MILVUS__URI": str(tmp_path / "embedded.db"),
        "VIDSEARCH_STACK__STATE_DIR": str(tmp_path / "state"),
        "VIDSEARCH_ENCODERS__BACKEND": "onnx",
    }
    res = subprocess.run([VIDSEARCH, "ingest", "--source", f"file:{path}", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    # f3's upsert and its newer delete share a batch: only the delete is written.
    assert (report["indexed"], report["deleted"], report["dead"]) == (39, 1, 1)
    # A milvus-lite file has one owner at a time: rerun before this process opens it to read.
    again = subprocess.run([VIDSEARCH, "ingest", "--source", f"file:{path}", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["events"] == 0, "the checkpoint did not make the rerun resume at the end"
    embedded = settings.model_copy(update={"milvus": settings.milvus.model_copy(update={"uri": str(tmp_path / "embedded.db")})})
    assert milvus_state(embedded) == expected_live(events)
