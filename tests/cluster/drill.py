"""What the fault drills share: the cluster's nodes (find a leader, kill, restart), a stream of
real events produced while faults happen, indexers as real `vidsearch ingest` processes, a
watcher that times progress, and the check that both stores hold exactly the expected set."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from tests.integration.command_helpers import scope_env, settings_for
from tests.integration.indexer_helpers import milvus_state, opensearch_state
from vidsearch.connector.kafka.config import kafka_client_config
from vidsearch.connector.kafka.topics import ensure_topics
from vidsearch.core.settings import Settings
from vidsearch.ops.bench import events
from vidsearch.ops.stack.manager import Stack
from vidsearch.ops.stack.services.kafka import cluster_metadata, under_replicated
from vidsearch.plugins.opensearch.client import make_client
from vidsearch.plugins.opensearch.videos import index_name

VIDSEARCH = str(Path(sys.executable).parent / "vidsearch")
# Sampling a count every half second logs every 404 (before the index exists) and every refused
# connection (a node down) at WARNING: thousands of lines that would hide a failure's own.
logging.getLogger("opensearch").setLevel(logging.ERROR)
REPORT = Path(os.environ.get("VIDSEARCH_DRILL_REPORT", "/tmp/vidsearch-cluster-drills.json"))


@dataclass
class Cluster:
    env: dict[str, str]  # the whole environment of a process that should use the cluster
    settings: Settings
    up_report: dict[str, Any]

    def stack(self) -> Stack:
        return Stack(self.settings, ["kafka", "opensearch", "redis"])

    def nodes(self, kind: str) -> list[str]:
        return self.stack().kinds[kind]

    def kill(self, name: str) -> float:
        """kill -9 of the node's whole process group, as a crashed machine would; returns when."""
        pid = self.stack().process(name).pid()
        assert pid is not None, f"{name} is not running"
        os.killpg(pid, signal.SIGKILL)
        return time.monotonic()

    def stop(self, name: str) -> None:
        """A clean stop (SIGTERM, as a rolling restart does)."""
        assert self.stack().process(name).stop(self.settings.stack.stop_timeout_s), f"{name} was not running"

    def start(self, name: str) -> float:
        """Start the node again and wait until it is healthy; seconds it took."""
        stack = self.stack()
        deadline = time.monotonic() + 15
        while stack.process(name).pid() is not None and time.monotonic() < deadline:
            time.sleep(0.2)  # a killed JVM takes a moment to be reaped
        stack.start_node(name)
        return stack.wait_node(name)

    # -- Kafka ---------------------------------------------------------------------------------
    def metadata(self) -> Any:
        return cluster_metadata(self.settings, self.settings.kafka.bootstrap_servers)

    def leader_of(self, topic: str, partition: int = 0) -> str:
        leader = self.metadata().topics[topic].partitions[partition].leader
        return "kafka" if leader == 1 else f"kafka-{leader}"

    def wait_in_sync(self, timeout_s: float = 180) -> float:
        """Seconds until every broker is live and no partition is under-replicated."""
        t0 = time.monotonic()
        while True:
            try:
                meta = self.metadata()
                if len(meta.brokers) == len(self.nodes("kafka")) and under_replicated(meta) == 0:
                    return time.monotonic() - t0
            except Exception:  # a broker restarting answers nothing for a moment
                pass
            assert time.monotonic() - t0 < timeout_s, "Kafka did not get every partition back in sync"
            time.sleep(0.5)

    # -- OpenSearch ----------------------------------------------------------------------------
    def search_client(self) -> Any:
        return make_client(self.settings.opensearch, max_retries=1)

    def node_of(self, os_node_name: str) -> str:
        """`vidsearch-node-2` (OpenSearch's name) -> `opensearch-2` (the stack's)."""
        k = int(os_node_name.rsplit("-", 1)[1])
        return "opensearch" if k == 1 else f"opensearch-{k}"

    @staticmethod
    def os_name(node: str) -> str:
        """`opensearch-2` (the stack's name) -> `vidsearch-node-2` (OpenSearch's)."""
        return f"vidsearch-node-{1 if node == 'opensearch' else int(node.rsplit('-', 1)[1])}"

    def cluster_manager(self) -> str:
        rows = self.search_client().cat.cluster_manager(format="json")
        return self.node_of(rows[0]["node"])

    def primaries_on(self, index: str) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for row in self.search_client().cat.shards(index=index, format="json"):
            if row["prirep"] == "p" and row.get("node"):
                out.setdefault(self.node_of(row["node"]), []).append(int(row["shard"]))
        return out

    def move_a_primary_to(self, index: str, node: str) -> None:
        """Make `node` hold a primary of `index`: cancel one primary elsewhere (its in-sync replica
        on `node` is promoted, and the cancelled copy recovers as a replica)."""
        if self.primaries_on(index).get(node):
            return
        client = self.search_client()
        other, shards = next(iter(self.primaries_on(index).items()))
        client.cluster.reroute(body={"commands": [{"cancel": {"index": index, "shard": shards[0], "node": self.os_name(other),
                                                             "allow_primary": True}}]})
        deadline = time.monotonic() + 60
        while not self.primaries_on(index).get(node):
            assert time.monotonic() < deadline, f"no primary of {index} moved to {node}"
            time.sleep(0.5)

    def restart_search_node(self, name: str) -> None:
        """Restart one search node the way the runbook says: a cluster-manager eligible node is
        first excluded from voting (so a 2-node cluster keeps a manager), then stopped cleanly,
        started, and the cluster waited back to green before the exclusion is lifted."""
        client = self.search_client()
        client.transport.perform_request("POST", "/_cluster/voting_config_exclusions", params={"node_names": self.os_name(name)})
        try:
            self.stop(name)
            self.start(name)
            self.wait_green()
        finally:
            client.transport.perform_request("DELETE", "/_cluster/voting_config_exclusions",
                                             params={"wait_for_removal": "false"})

    def wait_green(self, timeout_s: float = 240) -> float:
        t0 = time.monotonic()
        while True:
            try:
                health = self.search_client().cluster.health(request_timeout=10)
                if health["status"] == "green" and health["number_of_nodes"] == len(self.nodes("opensearch")):
                    return time.monotonic() - t0
            except Exception:
                pass
            assert time.monotonic() - t0 < timeout_s, "OpenSearch did not get back to green"
            time.sleep(0.5)


@dataclass
class Progress:
    """Samples how many documents OpenSearch holds, to time the pause a fault caused."""

    samples: list[tuple[float, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def longest_stall(self, since: float, until: float) -> float:
        """The longest time in [since, until] during which the count did not grow."""
        last_growth, best, prev = since, 0.0, None
        for t, count in self.samples:
            if t < since or t > until:
                prev = count if t < since else prev
                continue
            if prev is not None and count > prev:
                best = max(best, t - last_growth)
                last_growth = t
            prev = count
        return round(best, 1)


class Drill:
    """One scenario: its own topic, index and collection on the cluster, a stream of `n` real
    events, indexers that are real processes, and the figures the closing report gives."""

    def __init__(self, cluster: Cluster, name: str, tmp: Path, n: int) -> None:
        self.cluster, self.name, self.tmp, self.n = cluster, name, tmp, n
        self.env = {**cluster.env, **scope_env(name, tmp), "VIDSEARCH_INDEXER__UNAVAILABLE_BACKOFF_S": "1.0"}
        self.settings = settings_for({k: v for k, v in self.env.items() if k.startswith("VIDSEARCH_")})
        self.ids = [f"{name}-{i:05d}" for i in range(n)]
        self.index = index_name(self.settings.indexer.index_prefix, self.settings.indexer.model_version)
        self.indexers: dict[str, subprocess.Popen[bytes]] = {}
        self.progress = Progress()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.produced = 0
        self.produce_error: list[str] = []
        self.killed: set[str] = set()
        ensure_topics(self.settings)

    # -- the stream ----------------------------------------------------------------------------
    def stream(self, rate_per_s: float) -> None:
        """Produce every event in the background at `rate_per_s`, so faults land mid-stream.
        acks=all with idempotence: the producer rides out a leader election on its own."""
        def run() -> None:
            producer = Producer({**kafka_client_config(self.settings.kafka), "enable.idempotence": True, "acks": "all",
                                 "linger.ms": 20, "message.max.bytes": 16 * 1024**2})
            t0 = time.monotonic()
            try:
                for i, vid in enumerate(self.ids):
                    producer.produce(self.settings.indexer.topic, key=vid.encode(), value=events.upsert(vid, 1, seed=i))
                    self.produced = i + 1
                    producer.poll(0)
                    lag = t0 + (i + 1) / rate_per_s - time.monotonic()
                    if lag > 0:
                        time.sleep(lag)
                left = producer.flush(300)
                if left:
                    self.produce_error.append(f"{left} events not acknowledged")
            except Exception as exc:
                self.produce_error.append(repr(exc))
        self._spawn(run)

    def _spawn(self, target: Any) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- indexers ------------------------------------------------------------------------------
    def start_indexer(self, tag: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"indexer-{tag}.log").open("ab")
        proc = subprocess.Popen([VIDSEARCH, "ingest", "--json"], env=self.env, stdout=log, stderr=log)
        self.indexers[tag] = proc
        return proc

    def kill_indexer(self, tag: str) -> None:
        self.killed.add(tag)
        self.indexers[tag].kill()
        self.indexers[tag].wait(30)

    def stop_indexers(self) -> None:
        for proc in self.indexers.values():
            if proc.poll() is None:
                proc.terminate()
        for tag, proc in self.indexers.items():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError(f"indexer {tag} did not stop on SIGTERM") from None

    def indexer_log(self, tag: str) -> str:
        return (self.tmp / f"indexer-{tag}.log").read_text(errors="replace")[-4000:]

    # -- watching ------------------------------------------------------------------------------
    def count(self) -> int:
        client = self.cluster.search_client()
        return int(client.count(index=self.index, request_timeout=10)["count"])

    def watch(self) -> None:
        def run() -> None:
            while not self._stop.is_set():
                try:
                    self.progress.samples.append((time.monotonic(), self.count()))
                except Exception as exc:  # the index may not exist yet, or a node is down
                    self.progress.errors.append(type(exc).__name__)
                self._stop.wait(0.5)
        self._spawn(run)

    def wait_count(self, at_least: int, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while not (self.progress.samples and self.progress.samples[-1][1] >= at_least):
            assert time.monotonic() < deadline, f"stores never reached {at_least} documents:\n{self._logs()}"
            time.sleep(0.3)

    def wait_mid_stream(self, produced: int, timeout_s: float = 300) -> None:
        """Until `produced` events are out and the indexers have written some: the moment a
        fault lands in the middle of both producing and indexing."""
        deadline = time.monotonic() + timeout_s
        while self.produced < produced or not (self.progress.samples and self.progress.samples[-1][1] > 0):
            assert not self.produce_error, self.produce_error
            assert time.monotonic() < deadline, f"the stream never got to {produced} events:\n{self._logs()}"
            time.sleep(0.2)

    def wait_exact(self, timeout_s: float = 600) -> float:
        """Until both stores hold exactly the expected ids, each once; the time it happened."""
        deadline = time.monotonic() + timeout_s
        expected = dict.fromkeys(self.ids, 1)
        while True:
            assert not self.produce_error, self.produce_error
            if self.progress.samples and self.progress.samples[-1][1] >= self.n:
                os_state, mv_state = opensearch_state(self.settings), milvus_state(self.settings)
                if os_state == expected and mv_state == expected:
                    return time.monotonic()
                extra = set(os_state) - set(expected)
                assert not extra, f"OpenSearch holds documents never produced: {sorted(extra)[:5]}"
            for tag, proc in self.indexers.items():
                assert proc.poll() is None or tag in self.killed, f"indexer {tag} exited:\n{self.indexer_log(tag)}"
            assert time.monotonic() < deadline, (f"after {timeout_s}s OpenSearch has {self.count()} of {self.n}:\n"
                                                 f"{self._logs()}")
            time.sleep(1.0)

    def dead_letters(self) -> int:
        consumer = Consumer({**kafka_client_config(self.settings.kafka), "group.id": f"{self.name}-dlq-count"})
        try:
            meta = consumer.list_topics(self.settings.indexer.dlq_topic, timeout=10).topics[self.settings.indexer.dlq_topic]
            total = 0
            for p in meta.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(self.settings.indexer.dlq_topic, p), timeout=10)
                total += high - low
            return total
        finally:
            consumer.close()

    def _logs(self) -> str:
        return "\n".join(f"--- indexer {t} ---\n{self.indexer_log(t)}" for t in self.indexers)

    def finish(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=330)
        self.stop_indexers()


class QueryLoad:
    """Searches the drill's catalogue through the real retriever, one query after another, in the
    background: during a fault, answers may be degraded (a route missing) but never errors."""

    def __init__(self, settings: Settings) -> None:
        from vidsearch.plugins.retrieval.build import build_retriever

        self.retriever = build_retriever(settings)
        self.answered = self.degraded = 0
        self.errors: list[str] = []
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from vidsearch.plugins.retrieval.request import SearchRequest

        queries = events.captions()
        i = 0
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                resp = self.retriever.search(SearchRequest(q=queries[i % len(queries)], k=10, moments=False))
                self.answered += 1
                self.degraded += int(resp.degraded)
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            self.latencies.append(time.monotonic() - t0)
            i += 1
            self._stop.wait(0.2)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=60)
        lat = sorted(self.latencies) or [0.0]
        return {"queries": self.answered + len(self.errors), "answered": self.answered, "degraded": self.degraded,
                "errors": len(self.errors), "max_latency_s": round(lat[-1], 2)}


def record(scenario: str, figures: dict[str, Any]) -> None:
    """Add a drill's figures to the report file (the closing note quotes it) and to the log."""
    try:
        report = json.loads(REPORT.read_text())
    except (OSError, ValueError):
        report = {}
    report[scenario] = figures
    REPORT.write_text(json.dumps(report, indent=2))
    print(f"drill {scenario}: {json.dumps(figures)}")
