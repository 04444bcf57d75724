"""The cluster the fault drills run on: 3 Kafka brokers (RF 3, min ISR 2) and 2 OpenSearch nodes
(1 replica, 2 shards), plus a Redis of its own, started by `vidsearch stack up` beside the
session's single-node stack on ports of their own, and wiped when the drills are done.

Milvus is the session stack's (milvus-lite has no cluster mode); what a drill creates there is
dropped after it like any other test's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cleanup import drop_resources
from tests.cluster.drill import Cluster, record
from tests.integration.command_helpers import settings_for
from vidsearch.core.settings import Settings

VIDSEARCH = str(Path(sys.executable).parent / "vidsearch")
KAFKA, CONTROLLER, HTTP, TRANSPORT, REDIS = 29092, 29093, 29200, 29300, 29379
BROKERS, SEARCH_NODES = 3, 2


def cluster_env(settings: Settings) -> dict[str, str]:
    """Client and stack settings naming every node of the cluster, as a deployment would."""
    return {
        "VIDSEARCH_STACK__STATE_DIR": str(settings.stack.state_dir / "cluster-drills"),
        "VIDSEARCH_KAFKA__BOOTSTRAP_SERVERS": ",".join(f"127.0.0.1:{KAFKA + 2 * i}" for i in range(BROKERS)),
        "VIDSEARCH_STACK__KAFKA_CONTROLLER_PORT": str(CONTROLLER),
        "VIDSEARCH_OPENSEARCH__URL": ",".join(f"http://127.0.0.1:{HTTP + i}" for i in range(SEARCH_NODES)),
        "VIDSEARCH_STACK__OPENSEARCH_TRANSPORT_PORT": str(TRANSPORT),
        "VIDSEARCH_REDIS__URL": f"redis://127.0.0.1:{REDIS}/0",
        # Small enough that 3 brokers and 2 search nodes fit beside everything else on 2 cores.
        "VIDSEARCH_STACK__KAFKA_HEAP": "320m",
        "VIDSEARCH_STACK__OPENSEARCH_HEAP": "768m",
        "VIDSEARCH_KAFKA__REPLICATION_FACTOR": "3",
        "VIDSEARCH_KAFKA__MIN_INSYNC_REPLICAS": "2",
        "VIDSEARCH_KAFKA__TOPIC_PARTITIONS": "6",
        "VIDSEARCH_OPENSEARCH__NUMBER_OF_REPLICAS": "1",
        "VIDSEARCH_OPENSEARCH__NUMBER_OF_SHARDS": "2",
    }


@pytest.fixture(scope="module")
def cluster(stack: object, settings: Settings) -> Iterator[Cluster]:
    """The cluster, healthy, for the drills of a module; `stack down --wipe` after them, so its
    ~3 GB are not held through the rest of the test session."""
    env = {**os.environ, **cluster_env(settings)}
    up = subprocess.run([VIDSEARCH, "stack", "up", "-s", "kafka", "-s", "opensearch", "-s", "redis",
                         "--kafka-brokers", str(BROKERS), "--opensearch-nodes", str(SEARCH_NODES), "--json"],
                        env=env, capture_output=True, text=True, timeout=900)
    assert up.returncode == 0, f"cluster did not start:\n{up.stdout[-3000:]}\n{up.stderr[-6000:]}"
    report = json.loads(up.stdout)
    assert report["layout"] == {"kafka_brokers": BROKERS, "opensearch_nodes": SEARCH_NODES}
    status = json.loads(subprocess.run([VIDSEARCH, "stack", "status", "-s", "kafka", "-s", "opensearch", "--json"],
                                       env=env, capture_output=True, text=True, timeout=120).stdout)
    kafka, search = status["services"]["kafka"], status["services"]["opensearch"]
    assert (kafka["brokers"], search["nodes"], search["cluster_status"]) == (BROKERS, SEARCH_NODES, "green"), status
    record("cluster_up", {"start_s": report["total_s"], "rss_mb": report["rss_mb"],
                          "rss_mb_per_node": {n: m["rss_mb"] for s in (kafka, search) for n, m in s["members"].items()}})
    cluster = Cluster(env, settings_for(cluster_env(settings)), report)
    try:
        yield cluster
    finally:
        down = subprocess.run([VIDSEARCH, "stack", "down", "--wipe", "-s", "kafka", "-s", "opensearch", "-s", "redis", "--json"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert down.returncode == 0, down.stderr[-3000:]


@pytest.fixture
def drill_name(cluster: Cluster, unique_name: str) -> Iterator[str]:
    """A fresh name whose topics and indices are dropped from the cluster after the drill (its
    Milvus collections from the session stack by `unique_name`)."""
    yield unique_name
    errors = drop_resources(cluster.settings, [unique_name])
    assert not errors, errors
