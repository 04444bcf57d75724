"""Re-embedding after retraining, end to end: real Redis, real Celery worker subprocesses, real
OpenSearch and Milvus. One catalogue of 2,000 videos goes through a promotion with a worker
killed mid-job, live ingestion during the job and queries hammering the alias; then a rollback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from vidsearch.connector.app import feature_store, make_sinks
from vidsearch.ops.registry.routing import registry_routing
from vidsearch.connector.bulk import Item, write_items
from vidsearch.connector.feature_store import FileFeatureStore
from vidsearch.encoders.features import VideoFeatures
from vidsearch.ops.reembed.job import rollback, start
from vidsearch.ops.reembed.payload import worker_env
from vidsearch.ops.reembed.state import JobStore
from vidsearch.ops.registry.registry import ModelRegistry
from vidsearch.core.settings import Settings
from vidsearch.plugins.milvus.client import iter_rows
from vidsearch.plugins.milvus.client import make_client as milvus_client
from vidsearch.plugins.milvus.videos import collection_name
from vidsearch.plugins.opensearch.client import make_client
from vidsearch.plugins.opensearch.videos import index_name

pytestmark = [pytest.mark.integration, pytest.mark.models, pytest.mark.slow]
N = 2000


def synthetic(vid: str, rng: np.random.Generator) -> VideoFeatures:
    unit = lambda n: (lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True))(rng.standard_normal(n).astype(np.float32))
    return VideoFeatures(video_id=vid, duration_s=10.0, title=f"video {vid}", description="synthetic catalogue entry",
                         keyframe_times=np.array([1.0, 5.0], np.float32), frame_features=np.abs(unit((2, 1280))),
                         frame_bridge=unit((2, 384)), frame_top_classes=rng.integers(0, 1000, (2, 5)).astype(np.int16),
                         frame_top_probs=np.full((2, 5), 0.2, np.float32),
                         text_metadata=unit(384), audio_vector=unit(384), has_audio=True,
                         encoder_versions={"text": "minilm@test", "vision": "efficientnet@test"})


def make_model(out: Path, version: str) -> Path:
    """A real fusion head (towers at their deterministic init), exported to ONNX with its card."""
    import torch
    from vidsearch.encoders.balanced.export import export_towers
    from vidsearch.encoders.balanced.towers import QueryTower, VideoTower

    torch.manual_seed(0)
    export_towers(VideoTower(), QueryTower(), out)
    (out / "card.json").write_text(json.dumps({"version": version, "encoder_versions": {"text": "minilm@test", "vision": "efficientnet@test"},
                                               "metrics": {}}))
    return out


def scoped(settings: Settings, name: str, tmp: Path, **reembed) -> Settings:
    idx = settings.indexer.model_copy(update={"index_prefix": name.replace("_", "-"), "collection_prefix": name,
                                              "model_version": "default-v1", "feature_store": tmp / "features",
                                              "batch_max_events": 100})
    re_ = settings.reembed.model_copy(update={"queue": name, "chunks": 8, "batch_size": 100, "gate_queries": 10,
                                              "min_overlap": 0.05, "visibility_timeout_s": 15.0, **reembed})
    return settings.model_copy(update={"indexer": idx, "reembed": re_})


def load_catalogue(s: Settings, n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    feats = [synthetic(f"v{i:05d}", rng) for i in range(n)]
    store = feature_store(s)
    for f in feats:
        store.put(f.video_id, 1, f)
    write_items(make_sinks(s), [Item(f) for f in feats], s.indexer.model_version, batch=500)
    make_client(s.opensearch).indices.refresh(index=s.indexer.index_prefix)
    return [f.video_id for f in feats]


def worker(s: Settings, name: str) -> subprocess.Popen[bytes]:
    """A worker serving this test's catalogue: its settings come from its own environment (a task
    message carries ids only)."""
    env = {**os.environ, **worker_env(s)}
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "vidsearch.ops.celery_app", "worker", "--pool=solo",
                             f"--queues={s.reembed.queue}", f"--hostname={name}@%h", "--without-gossip", "--without-mingle",
                             "--loglevel=WARNING"], env=env)


def wait_job(s: Settings, job_id: str, timeout: float = 400) -> dict:
    jobs = JobStore(ModelRegistry(s))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = jobs.status(job_id)
        if st and st["state"] in ("swapped", "failed"):
            return st
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {jobs.status(job_id)}")


def alias_targets(s: Settings) -> tuple[list[str], str]:
    os_alias = sorted(make_client(s.opensearch).indices.get_alias(name=s.indexer.index_prefix))
    mv = milvus_client(s.milvus)
    try:
        return os_alias, mv.describe_alias(alias=s.indexer.collection_prefix)["collection_name"]
    finally:
        mv.close()


def milvus_ids(s: Settings, version: str) -> list[str]:
    mv = milvus_client(s.milvus, timeout=60)
    try:
        name = collection_name(s.indexer.collection_prefix, version)
        mv.load_collection(name)
        return [r["id"] for r in iter_rows(mv, name, ["id", "meta"]) if r["meta"].get("model_version") == version]
    finally:
        mv.close()


def test_promotion_survives_a_killed_worker_keeps_live_writes_and_never_mixes_versions(
        stack: object, settings: Settings, tmp_path: Path) -> None:
    from vidsearch.plugins.retrieval.build import build_retriever
    from vidsearch.plugins.retrieval.request import SearchRequest

    name = f"t_reembed_{uuid.uuid4().hex[:8]}"
    s = scoped(settings, name, tmp_path)
    ids = load_catalogue(s, N)
    registry = ModelRegistry(s)
    target = f"mbvr-test-{uuid.uuid4().hex[:6]}"
    registry.register(make_model(tmp_path / "model", target))
    source = registry.current()
    assert source == "default-v1"

    # queries through the alias for the whole job: count errors, and which versions answered
    hammer = s.model_copy(update={"retrieval": s.retrieval.model_copy(update={"lexical_store": "opensearch",
                                                                                "dense_store": "opensearch", "fallback": False})})
    retriever = build_retriever(hammer)
    stop, errors, seen = threading.Event(), [], []

    def hammering() -> None:
        while not stop.is_set():
            try:
                res = retriever.search(SearchRequest(q="synthetic video", k=10, routes=("bm25",), moments=False))
                versions = {h.model_version for h in res.hits}
                seen.append(versions)
                if res.degraded or len(res.hits) != 10:
                    errors.append(f"degraded or short: {res.warnings} {len(res.hits)}")
            except Exception as exc:  # every failure is a finding here
                errors.append(repr(exc))

    workers = [worker(s, f"{name}-a"), worker(s, f"{name}-b")]
    thread = threading.Thread(target=hammering, daemon=True)
    thread.start()
    try:
        job = start(s, target)
        jobs = JobStore(registry)
        deadline = time.monotonic() + 120
        while jobs.done(job.id) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert jobs.done(job.id) > 0, "no progress"
        workers[0].send_signal(signal.SIGKILL)  # kill -9 mid-job: its chunk is unacknowledged
        workers[0].wait(10)
        workers.append(worker(s, f"{name}-c"))

        # live ingestion during the job: the registry routes it to both versions
        versions, model = registry_routing(s)
        assert versions() == [source, target]
        rng = np.random.default_rng(99)
        live = [synthetic(f"live{i:03d}", rng) for i in range(20)]
        for f in live:
            feature_store(s).put(f.video_id, 1, f)
        (version, embedder), *others = model()
        assert version == source and [v for v, _ in others] == [target]
        write_items(make_sinks(s, versions=versions), [Item(f) for f in live], version, embedder, also=others)

        st = wait_job(s, job.id)
    finally:
        stop.set()
        thread.join(10)
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)

    assert st["state"] == "swapped", st
    assert st["done"] >= N and st["total"] == N
    want = set(ids) | {f.video_id for f in live}
    client = make_client(s.opensearch)
    client.indices.refresh(index=index_name(s.indexer.index_prefix, target))
    new_index = index_name(s.indexer.index_prefix, target)
    assert client.count(index=new_index)["count"] == len(want)
    got = {h["_id"]: h["_source"]["model_version"] for h in __import__("opensearchpy").helpers.scan(
        client, index=new_index, query={"_source": ["model_version"]})}
    assert set(got) == want and set(got.values()) == {target}, "missing videos or old vectors in the new version"
    mids = milvus_ids(s, target)
    assert len(mids) == len(set(mids)) == len(want) and set(mids) == want, "Milvus: missing or duplicated"
    os_alias, mv_alias = alias_targets(s)
    assert os_alias == [new_index] and mv_alias == collection_name(s.indexer.collection_prefix, target)
    assert registry.current() == target and registry.previous() == source
    assert not errors, errors[:5]
    assert seen and all(len(v) == 1 for v in seen), "a response mixed versions"
    assert {next(iter(v)) for v in seen} <= {source, target}

    back = rollback(s)
    assert back["current"] == source and registry.current() == source
    os_alias, mv_alias = alias_targets(s)
    assert os_alias == [index_name(s.indexer.index_prefix, source)]
    assert mv_alias == collection_name(s.indexer.collection_prefix, source)
    # the previous version stayed complete: live writes reached it too
    assert client.count(index=index_name(s.indexer.index_prefix, source))["count"] == len(want)


def test_a_failing_gate_leaves_the_aliases_and_says_why(stack: object, settings: Settings, tmp_path: Path) -> None:
    name = f"t_gate_{uuid.uuid4().hex[:8]}"
    s = scoped(settings, name, tmp_path, min_overlap=1.01, chunks=2)
    load_catalogue(s, 60, seed=1)
    registry = ModelRegistry(s)
    target = f"mbvr-gate-{uuid.uuid4().hex[:6]}"
    registry.register(make_model(tmp_path / "model", target))
    before = alias_targets(s)
    w = worker(s, f"{name}-w")
    try:
        st = wait_job(s, start(s, target).id, timeout=200)
    finally:
        w.terminate()
        w.wait(30)
    assert st["state"] == "failed" and "overlap" in st["reason"] and "min_overlap 1.01" in st["reason"]
    assert alias_targets(s) == before
    assert registry.current() == "default-v1" and target not in registry.extra_targets()


def test_a_video_with_corrupt_features_is_skipped_and_reported(stack: object, settings: Settings, tmp_path: Path) -> None:
    from vidsearch.ops.reembed.swap import drop_version

    name = f"t_corrupt_{uuid.uuid4().hex[:8]}"
    s = scoped(settings, name, tmp_path, chunks=2, gate_queries=0, max_failed_fraction=0.05)
    ids = load_catalogue(s, 60, seed=3)
    bad = ids[17]
    store = feature_store(s)
    assert isinstance(store, FileFeatureStore)
    store._path(bad).write_bytes(b"PK\x03\x04 this is not an npz record")  # torn/corrupt on disk
    registry = ModelRegistry(s)
    target = f"mbvr-corrupt-{uuid.uuid4().hex[:6]}"
    registry.register(make_model(tmp_path / "model", target))
    w = worker(s, f"{name}-w")
    try:
        st = wait_job(s, start(s, target).id, timeout=300)
        assert st["state"] == "swapped", st
        assert st["failed_videos"] == 1 and st["failed_ids"] == [bad], st
        assert st["done"] == len(ids) - 1
        failed = st["report"]["failed_videos"]
        assert failed["count"] == 1 and failed["ids"] == [bad] and "corrupt" in failed["reasons"][bad]
        assert "1 skipped" in st["reason"]
        assert sorted(c["failed"] for c in st["report"]["chunks"]) == [0, 1]
        client = make_client(s.opensearch)
        new_index = index_name(s.indexer.index_prefix, target)
        client.indices.refresh(index=new_index)
        assert client.count(index=new_index)["count"] == len(ids) - 1
        assert not client.exists(index=new_index, id=bad)
        assert sorted(milvus_ids(s, target)) == sorted(set(ids) - {bad})
    finally:
        w.terminate()
        w.wait(30)
        mv = milvus_client(s.milvus)
        try:
            mv.drop_alias(alias=s.indexer.collection_prefix)
        finally:
            mv.close()
        for version in ("default-v1", target):
            drop_version(s, version)
        registry.r.delete(*registry.r.keys(f"{registry.prefix}*"), *registry.r.keys(f"{JobStore(registry).prefix}*"))


def test_a_forged_task_cannot_redirect_a_worker(stack: object, settings: Settings, tmp_path: Path) -> None:
    """A task message carries ids only; a worker takes its settings from its own configuration
    and refuses a message for another catalogue or with malformed ids, touching nothing."""
    from vidsearch.ops.celery_app import app
    from vidsearch.ops.reembed.payload import catalogue

    name = f"t_forged_{uuid.uuid4().hex[:8]}"
    s = scoped(settings, name, tmp_path)
    victim = f"t-victim-{uuid.uuid4().hex[:8]}"
    w = worker(s, f"{name}-w")
    try:
        forged = {**catalogue(s), "index_prefix": victim}
        sent = {
            "other catalogue": ("abc123def456", "default-v1", "x-v2", 0, 1, forged),
            "bad job id": ("*", "default-v1", "x-v2", 0, 1, catalogue(s)),
            "extra settings": ("abc123def456", "default-v1", "x-v2", 0, 1,
                               {**catalogue(s), "feature_store": "/etc"}),
            "bad slice": ("abc123def456", "default-v1", "x-v2", 5, 2, catalogue(s)),
        }
        results = {why: app.send_task("vidsearch.reembed.chunk", args=list(args), queue=s.reembed.queue)
                   for why, args in sent.items()}
        errors = {}
        for why, res in results.items():
            res.get(timeout=60, propagate=False)
            assert res.state == "FAILURE", (why, res.state)
            errors[why] = type(res.result).__name__ + ": " + str(res.result)
    finally:
        w.terminate()
        w.wait(30)
    assert "ConfigError" in errors["other catalogue"] and victim in errors["other catalogue"]
    assert "TaskPayloadError" in errors["bad job id"]
    assert "TaskPayloadError" in errors["extra settings"]
    assert "TaskPayloadError" in errors["bad slice"]
    assert make_client(s.opensearch).indices.get(index=f"{victim}*") == {}  # nothing was created for it


def test_consistency_check_and_retention_cleanup(stack: object, settings: Settings, tmp_path: Path) -> None:
    from vidsearch.ops.celery_app import beat_schedule
    from vidsearch.ops.reembed.consistency import check
    from vidsearch.ops.reembed.job import cleanup
    from vidsearch.plugins.opensearch.videos import ensure_index

    name = f"t_maint_{uuid.uuid4().hex[:8]}"
    s = scoped(settings, name, tmp_path)
    ids = load_catalogue(s, 30, seed=2)
    report = check(s)
    assert report["consistent"] and report["videos"] == 30 and report["milvus"]["count"] == 30
    client = make_client(s.opensearch)
    client.delete(index=index_name(s.indexer.index_prefix, "default-v1"), id=ids[0], refresh=True)
    report = check(s)
    assert not report["consistent"] and report["opensearch"]["missing"] == [ids[0]] and report["milvus"]["missing"] == []

    registry = ModelRegistry(s)
    old = index_name(s.indexer.index_prefix, "old-v0")
    ensure_index(client, old, None)
    registry.add_extra("old-v0")
    registry.retain("old-v0", time.time() + 3600)
    assert cleanup(s) == [] and client.indices.exists(index=old)  # still inside its rollback window
    assert cleanup(s, now=time.time() + 7200) == ["old-v0"]
    assert not client.indices.exists(index=old) and "old-v0" not in registry.extra_targets()
    assert cleanup(s, now=time.time() + 7200) == []  # the current version is never dropped

    sched = beat_schedule(s.reembed.model_copy(update={"ncl_interval_s": 60.0}))
    assert sched["ncl-recompute"]["schedule"] == 60.0
    assert sched["consistency-check"]["task"] == "vidsearch.maintenance.consistency_check"
