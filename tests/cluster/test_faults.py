"""Fault drills on a real cluster (3 brokers, RF 3, min ISR 2; 2 search nodes, 1 replica): each
streams thousands of real events through real `vidsearch ingest` processes while a node or an
indexer dies, and ends only when both stores hold exactly the expected documents, each once.

The figures of each drill (events, the longest stall in progress, time to recover) go to the
report file named by `VIDSEARCH_DRILL_REPORT`; nothing here asserts a speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster.drill import VIDSEARCH, Cluster, Drill, QueryLoad, record

pytestmark = [pytest.mark.cluster, pytest.mark.integration, pytest.mark.slow]
EVENTS = 3000


def _tail(folder: Path) -> str:
    return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(folder.glob("*.log")))


def _begin(cluster: Cluster, name: str, tmp: Path, rate_per_s: float, indexers: tuple[str, ...] = ("a",)) -> Drill:
    """A drill under way: progress watched, indexers running, the stream flowing."""
    d = Drill(cluster, name, tmp, EVENTS)
    d.watch()
    for tag in indexers:
        d.start_indexer(tag)
    d.stream(rate_per_s)
    return d


def _common(d: Drill, fault: float, done: float) -> dict[str, object]:
    return {"events": d.n, "longest_stall_s": d.progress.longest_stall(fault, done),
            "all_indexed_after_fault_s": round(done - fault, 1), "dead_letters": d.dead_letters()}


def test_partition_leader_broker_killed_mid_stream(cluster: Cluster, drill_name: str, tmp_path: Path) -> None:
    d = _begin(cluster, drill_name, tmp_path, rate_per_s=60)
    d.wait_mid_stream(EVENTS // 4)
    victim = cluster.leader_of(d.settings.indexer.topic, 0)
    fault = cluster.kill(victim)
    produced_at_fault = d.produced
    done = d.wait_exact()  # the rest flows through the two brokers left: min ISR 2 still holds
    restart_s = cluster.start(victim)
    in_sync_s = cluster.wait_in_sync()
    d.finish()
    figures = {**_common(d, fault, done), "victim": victim, "produced_at_fault": produced_at_fault,
               "broker_restart_s": round(restart_s, 1), "back_in_sync_after_restart_s": round(in_sync_s, 1)}
    record("kafka_leader_killed", figures)
    assert figures["dead_letters"] == 0
    assert produced_at_fault < EVENTS, "the broker died after the stream ended: not a mid-stream fault"


def test_search_node_with_primaries_killed_mid_stream(cluster: Cluster, drill_name: str, tmp_path: Path) -> None:
    d = _begin(cluster, drill_name, tmp_path, rate_per_s=60)
    d.wait_mid_stream(EVENTS // 4)
    # With 2 nodes only one is in the voting configuration: losing it stops cluster management
    # (a 3-node cluster survives either). The drill kills the other one, holding a primary.
    victim = next(n for n in cluster.nodes("opensearch") if n != cluster.cluster_manager())
    cluster.move_a_primary_to(d.index, victim)
    queries = QueryLoad(d.settings)
    fault = cluster.kill(victim)
    d.wait_count(d.count() + 300)  # writes go on while the node is down
    during = queries.stop()
    down_s = time.monotonic() - fault
    restart_s = cluster.start(victim)
    green_s = cluster.wait_green()
    done = d.wait_exact()
    d.finish()
    figures = {**_common(d, fault, done), "victim": victim, "node_down_s": round(down_s, 1),
               "node_restart_s": round(restart_s, 1), "green_after_restart_s": round(green_s, 1), "queries_while_down": during}
    record("opensearch_node_killed", figures)
    assert figures["dead_letters"] == 0
    assert during["errors"] == 0 and during["answered"] > during["degraded"], during  # some answers whole, none failed


def test_rolling_restart_of_every_broker_and_search_node(cluster: Cluster, drill_name: str, tmp_path: Path) -> None:
    d = _begin(cluster, drill_name, tmp_path, rate_per_s=15)  # slow enough that the stream spans all five restarts
    d.wait_count(200)
    queries = QueryLoad(d.settings)
    fault = time.monotonic()
    steps = {}
    for broker in cluster.nodes("kafka"):
        t0 = time.monotonic()
        cluster.stop(broker)
        cluster.start(broker)
        cluster.wait_in_sync()
        steps[broker] = round(time.monotonic() - t0, 1)
    for node in cluster.nodes("opensearch"):
        t0 = time.monotonic()
        cluster.restart_search_node(node)
        steps[node] = round(time.monotonic() - t0, 1)
    produced_at_end = d.produced
    during = queries.stop()
    done = d.wait_exact()
    d.finish()
    figures = {**_common(d, fault, done), "restart_s": steps, "produced_when_restarts_ended": produced_at_end,
               "queries_during_restarts": during}
    record("rolling_restart", figures)
    assert figures["dead_letters"] == 0
    assert during["errors"] == 0 and during["answered"] > during["degraded"], during  # some answers whole, none failed
    assert produced_at_end < EVENTS, "the stream ended before the restarts did: not a restart during ingest"


def test_consumer_group_loses_one_indexer_and_gains_one(cluster: Cluster, drill_name: str, tmp_path: Path) -> None:
    d = _begin(cluster, drill_name, tmp_path, rate_per_s=60, indexers=("a", "b", "c"))
    d.wait_mid_stream(EVENTS // 4)
    fault = time.monotonic()
    d.kill_indexer("b")
    d.wait_mid_stream(EVENTS // 2)
    d.start_indexer("d")
    added = d.produced
    done = d.wait_exact()
    d.finish()
    figures = {**_common(d, fault, done), "indexers": "a, b, c; b killed (-9) at 1/4; d added at 1/2",
               "produced_when_d_joined": added}
    record("consumer_group_rebalance", figures)
    assert figures["dead_letters"] == 0
    assert added < EVENTS, "the new indexer joined after the stream ended"


def test_redis_restarted_during_a_reembed(cluster: Cluster, drill_name: str, tmp_path: Path) -> None:
    from tests.integration.test_reembed import contents, drop_all, load_catalogue, make_model, scoped, wait_job
    from vidsearch.ops.reembed.payload import worker_env
    from vidsearch.ops.reembed.state import JobStore
    from vidsearch.ops.registry.registry import ModelRegistry

    s = scoped(cluster.settings, drill_name, tmp_path)
    ids = load_catalogue(s, 2000)
    registry = ModelRegistry(s)
    target = f"{drill_name.replace('_', '-')}-next"
    registry.register(make_model(tmp_path / "model", target))
    source = registry.current()
    def worker(name: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "vidsearch.ops.celery_app", "worker", "--pool=solo",
                                 f"--queues={s.reembed.queue}", f"--hostname={name}@%h", "--without-gossip", "--without-mingle",
                                 "--loglevel=WARNING"], env={**cluster.env, **worker_env(s)}, stdout=log, stderr=log)

    workers = [worker(f"{drill_name}-a"), worker(f"{drill_name}-b")]
    try:
        # Started the way an operator does, so the chord goes through the cluster's Redis (this
        # process's Celery app was configured for the session stack's when it was imported).
        started = subprocess.run([VIDSEARCH, "reembed", "start", target, "--json"], env={**cluster.env, **worker_env(s)},
                                 capture_output=True, text=True, timeout=300)
        assert started.returncode == 0, started.stderr[-3000:]
        job_id = json.loads(started.stdout)["id"]
        jobs = JobStore(registry)
        deadline = time.monotonic() + 180
        while jobs.done(job_id) == 0:
            assert time.monotonic() < deadline, "the job made no progress"
            time.sleep(0.05)
        done_at_fault = jobs.done(job_id)
        fault = time.monotonic()
        cluster.stop("redis")  # the broker, the result backend, the registry and the job record
        time.sleep(5.0)
        restart_s = cluster.start("redis")
        try:
            st = wait_job(s, job_id, timeout=600)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_tail(tmp_path)}") from None
        finished = time.monotonic()
        for w in workers:
            assert w.poll() is None, f"a worker died with Redis instead of reconnecting:\n{_tail(tmp_path)}"
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
    try:
        figures = {"videos": len(ids), "done_when_redis_stopped": done_at_fault, "redis_down_s": 5.0,
                   "redis_restart_s": round(restart_s, 1), "job_finished_after_fault_s": round(finished - fault, 1),
                   "state": st["state"]}
        record("redis_restart_during_reembed", figures)
        assert st["state"] == "swapped", st
        assert done_at_fault < len(ids), "Redis stopped after the chunks were done: not mid-job"
        for store, got in contents(s, target).items():
            assert set(got) == set(ids), f"{store}: missing or extra videos in the new version"
            assert {mv for _, mv in got.values()} == {target}, f"{store}: old vectors in the new version"
    finally:
        drop_all(s, [source, target])
