"""Re-embedding after retraining, end to end: real Redis, real Celery worker subprocesses, real
OpenSearch and Milvus. One catalogue of 2,000 videos goes through a promotion with a worker
killed mid-job, live ingestion during the job and BM25 + k-NN queries hammering the alias of
both stores; then a rollback, checked on both stores' contents. A Milvus-only deployment goes
through the same promotion without OpenSearch."""

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

from vidsearch.connector.app import feature_store, make_writer
from vidsearch.connector.bulk import Item, write_items
from vidsearch.connector.feature_store import FileFeatureStore
from vidsearch.core.settings import Settings
from vidsearch.encoders.features import VideoFeatures
from vidsearch.ops.reembed.job import rollback, start
from vidsearch.ops.reembed.payload import worker_env
from vidsearch.ops.reembed.state import JobStore
from vidsearch.ops.registry.registry import ModelRegistry
from vidsearch.ops.registry.routing import registry_routing
from vidsearch.plugins.backends import configured_stores
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


def scoped(settings: Settings, name: str, tmp: Path, sinks: tuple[str, ...] = ("milvus", "opensearch"), **reembed) -> Settings:
    idx = settings.indexer.model_copy(update={"index_prefix": name.replace("_", "-"), "collection_prefix": name,
                                              "model_version": "default-v1", "feature_store": tmp / "features",
                                              "batch_max_events": 100, "sinks": sinks})
    re_ = settings.reembed.model_copy(update={"queue": name, "chunks": 8, "batch_size": 100, "gate_queries": 10,
                                              "min_overlap": 0.05, "visibility_timeout_s": 15.0, **reembed})
    return settings.model_copy(update={"indexer": idx, "reembed": re_})


def load_catalogue(s: Settings, n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    feats = [synthetic(f"v{i:05d}", rng) for i in range(n)]
    store = feature_store(s)
    for f in feats:
        store.put(f.video_id, 1, f)
    write_items(make_writer(s), [Item(f) for f in feats], batch=500)
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


def alias_targets(s: Settings) -> dict[str, str | None]:
    """store -> the physical index/collection its alias points at."""
    out = {}
    for store in configured_stores(s):
        out[store.name] = store.alias_target()
        store.close()
    return out


def physical(s: Settings, version: str) -> dict[str, str]:
    out = {}
    for store in configured_stores(s):
        out[store.name] = store.physical(version)
        store.close()
    return out


def contents(s: Settings, version: str) -> dict[str, dict[str, tuple[int, str]]]:
    """store -> video id -> (event version, model version) of `version`, read from the store."""
    out = {}
    for store in configured_stores(s, timeout_s=60.0):
        store.refresh(version)
        out[store.name] = store.id_versions(version)
        store.close()
    return out


def drop_all(s: Settings, versions: list[str]) -> None:
    for store in configured_stores(s, timeout_s=60.0):
        store.drop_alias()
        for version in versions:
            store.drop(version)
        store.close()
    registry = ModelRegistry(s)
    keys = [*registry.r.keys(f"{registry.prefix}*"), *registry.r.keys(f"{JobStore(registry).prefix}*")]
    if keys:
        registry.r.delete(*keys)


def hammer(s: Settings, store: str):  # noqa: ANN201 - a Retriever
    """A retriever that reads one store only (BM25 and k-NN both on it, no fallback)."""
    from vidsearch.plugins.retrieval.build import build_retriever

    only = s.model_copy(update={"retrieval": s.retrieval.model_copy(update={
        "lexical_store": store, "dense_store": store, "fallback": False})})
    return build_retriever(only)


def test_promotion_survives_a_killed_worker_keeps_live_writes_and_never_mixes_versions(
        stack: object, settings: Settings, tmp_path: Path) -> None:
    from vidsearch.plugins.retrieval.request import SearchRequest

    name = f"t_reembed_{uuid.uuid4().hex[:8]}"
    s = scoped(settings, name, tmp_path)
    ids = load_catalogue(s, N)
    registry = ModelRegistry(s)
    target = f"mbvr-test-{uuid.uuid4().hex[:6]}"
    registry.register(make_model(tmp_path / "model", target))
    source = registry.current()
    assert source == "default-v1"

    # BM25 + k-NN through each store's alias for the whole job: count errors, and which versions
    # answered (moments on: the model version of a Milvus hit comes with its stored document)
    retrievers = {store: hammer(s, store) for store in ("opensearch", "milvus")}
    request = SearchRequest(q="synthetic video", k=10, routes=("bm25", "knn"), moments=True)
    stop, errors = threading.Event(), []
    seen: dict[str, list[set[str | None]]] = {store: [] for store in retrievers}

    def hammering() -> None:
        while not stop.is_set():
            for store, retriever in retrievers.items():
                try:
                    res = retriever.search(request)
                    seen[store].append({h.model_version for h in res.hits})
                    if res.degraded or len(res.hits) != 10:
                        errors.append(f"{store}: degraded or short: {res.warnings} {len(res.hits)}")
                except Exception as exc:  # every failure is a finding here
                    errors.append(f"{store}: {exc!r}")

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
        assert [v for v, _ in model()] == [source, target]
        write_items(make_writer(s, versions=versions, models=model), [Item(f) for f in live])

        st = wait_job(s, job.id)
        # the swap is done: both stores must now answer with the new version, seen by the hammer
        after = {store: len(seen[store]) for store in seen}
        deadline = time.monotonic() + 30
        while any(len(seen[store]) < after[store] + 3 for store in seen) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(10)
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)

    try:
        assert st["state"] == "swapped", st
        assert st["done"] >= N and st["total"] == N
        want = set(ids) | {f.video_id for f in live}
        new = contents(s, target)
        assert set(new) == {"opensearch", "milvus"}
        for store, got in new.items():
            assert set(got) == want, f"{store}: missing or extra videos in the new version"
            assert {mv for _, mv in got.values()} == {target}, f"{store}: old vectors in the new version"
        assert alias_targets(s) == physical(s, target)
        assert registry.current() == target and registry.previous() == source
        assert not errors, errors[:5]
        for store, answers in seen.items():
            assert answers and all(len(v) == 1 for v in answers), f"{store}: a response mixed versions"
            assert {next(iter(v)) for v in answers} <= {source, target}
            assert all(v == {target} for v in answers[after[store]:]), f"{store}: old version answered after the swap"
            assert len(answers) > after[store], f"{store}: the new version was never observed after the swap"

        back = rollback(s)
        assert back["current"] == source and registry.current() == source
        assert alias_targets(s) == physical(s, source)
        # the previous version stayed complete and current in both stores: live writes reached it too
        for store, got in contents(s, source).items():
            assert set(got) == want and {mv for _, mv in got.values()} == {source}, store
        for store, retriever in retrievers.items():
            assert {h.model_version for h in retriever.search(request).hits} == {source}, store
    finally:
        drop_all(s, [source, target])


def test_milvus_only_deployment_re_embeds_and_swaps(stack: object, settings: Settings, tmp_path: Path) -> None:
    """With OpenSearch absent from the configuration, a promotion enumerates, re-embeds, catches up,
    validates and swaps on Milvus alone, and creates nothing in OpenSearch."""
    name = f"t_mvonly_{uuid.uuid4().hex[:8]}"
    s = scoped(settings, name, tmp_path, sinks=("milvus",), chunks=3, gate_queries=5)
    ids = load_catalogue(s, 120, seed=5)
    registry = ModelRegistry(s)
    target = f"mbvr-mv-{uuid.uuid4().hex[:6]}"
    registry.register(make_model(tmp_path / "model", target))
    w = worker(s, f"{name}-w")
    try:
        job = start(s, target)
        assert job.total == len(ids)
        st = wait_job(s, job.id, timeout=300)
        assert st["state"] == "swapped", st
        assert "top-10 overlap" in st["reason"]  # the gate really ran its queries, on Milvus
        got = contents(s, target)
        assert list(got) == ["milvus"]
        assert set(got["milvus"]) == set(ids) and {mv for _, mv in got["milvus"].values()} == {target}
        assert alias_targets(s) == physical(s, target)
        assert registry.current() == target
        assert make_client(s.opensearch).indices.get(index=f"{s.indexer.index_prefix}*") == {}
        back = rollback(s)
        assert back["current"] == "default-v1" and alias_targets(s) == physical(s, "default-v1")
    finally:
        w.terminate()
        w.wait(30)
        drop_all(s, ["default-v1", target])


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
    try:
        assert st["state"] == "failed" and "overlap" in st["reason"] and "min_overlap 1.01" in st["reason"]
        assert alias_targets(s) == before == physical(s, "default-v1")
        assert registry.current() == "default-v1" and target not in registry.extra_targets()
    finally:
        drop_all(s, ["default-v1", target])


def test_a_video_with_corrupt_features_is_skipped_and_reported(stack: object, settings: Settings, tmp_path: Path) -> None:
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
        for store, got in contents(s, target).items():
            assert sorted(got) == sorted(set(ids) - {bad}), store
    finally:
        w.terminate()
        w.wait(30)
        drop_all(s, ["default-v1", target])


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
    stores = configured_stores(s)
    for store in stores:
        store.ensure("old-v0")
    registry.add_extra("old-v0")
    registry.retain("old-v0", time.time() + 3600)
    assert cleanup(s) == [] and all(store.exists("old-v0") for store in stores)  # still inside its rollback window
    assert cleanup(s, now=time.time() + 7200) == ["old-v0"]
    assert not any(store.exists("old-v0") for store in stores) and "old-v0" not in registry.extra_targets()
    assert cleanup(s, now=time.time() + 7200) == []  # the current version is never dropped
    for store in stores:
        store.close()
    drop_all(s, ["default-v1"])

    sched = beat_schedule(s.reembed.model_copy(update={"ncl_interval_s": 60.0}))
    assert sched["ncl-recompute"]["schedule"] == 60.0
    assert sched["consistency-check"]["task"] == "vidsearch.maintenance.consistency_check"
