"""The local stack as a cluster: which nodes a layout makes, their ports and configuration, the
recorded layout, and the refusals (overlapping ports, data made for another layout). Nothing is
started here; the cluster drills (tests/cluster) start real nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidsearch.core.settings import KafkaSettings, OpenSearchSettings, Settings, StackSettings
from vidsearch.ops.stack.errors import StackError
from vidsearch.ops.stack.manager import LAYOUT_FILE, Layout, Stack
from vidsearch.ops.stack.services.kafka import KafkaService
from vidsearch.ops.stack.services.opensearch import OpenSearchService

pytestmark = pytest.mark.unit


def _settings(tmp_path: Path, **stack: object) -> Settings:
    return Settings(stack=StackSettings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", **stack))


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_three_brokers_make_a_quorum_of_three_with_their_own_ports_and_folders(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    stack = Stack(s, ["kafka"], Layout(kafka_brokers=4))
    assert stack.kinds["kafka"] == ["kafka", "kafka-2", "kafka-3", "kafka-4"]
    ports = {name: svc.ports() for name, svc in stack.services.items()}
    assert ports["kafka"] == {"broker": 9092, "controller": 9093}
    assert ports["kafka-3"] == {"broker": 9096, "controller": 9097}
    assert ports["kafka-4"] == {"broker": 9098}, "a fourth broker is not a controller"
    props = {}
    for name, svc in stack.services.items():
        assert isinstance(svc, KafkaService)
        props[name] = _props(svc._write_config().read_text())
    assert props["kafka-2"]["node.id"] == "2"
    assert props["kafka-2"]["controller.quorum.voters"] == "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    assert props["kafka-4"]["process.roles"] == "broker" and "CONTROLLER" not in props["kafka-4"]["listeners"]
    assert props["kafka"]["offsets.topic.replication.factor"] == "3"
    assert props["kafka"]["transaction.state.log.min.isr"] == "2"
    assert len({p["log.dirs"] for p in props.values()}) == 4


def test_one_broker_keeps_the_single_node_configuration(tmp_path: Path) -> None:
    (svc,) = Stack(_settings(tmp_path), ["kafka"], Layout()).services.values()
    assert isinstance(svc, KafkaService)
    props = _props(svc._write_config().read_text())
    assert svc.name == "kafka" and props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["offsets.topic.replication.factor"] == "1" and props["process.roles"] == "broker,controller"


def test_search_nodes_discover_each_other(tmp_path: Path) -> None:
    stack = Stack(_settings(tmp_path), ["opensearch"], Layout(opensearch_nodes=2))
    two = stack.services["opensearch-2"]
    assert isinstance(two, OpenSearchService)
    assert two.ports() == {"http": 9201, "transport": 9301}
    assert two._discovery() == {"discovery.seed_hosts": ["127.0.0.1:9300", "127.0.0.1:9301"],
                                "cluster.initial_cluster_manager_nodes": ["vidsearch-node-1", "vidsearch-node-2"]}
    one = Stack(_settings(tmp_path), ["opensearch"], Layout()).services["opensearch"]
    assert isinstance(one, OpenSearchService) and one._discovery() == {"discovery.type": "single-node"}


def test_overlapping_node_ports_are_refused_before_anything_starts(tmp_path: Path) -> None:
    s = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9092"),
                 stack=StackSettings(state_dir=tmp_path, cache_dir=tmp_path, kafka_controller_port=9094))
    stack = Stack(s, ["kafka"], Layout(kafka_brokers=3))
    with pytest.raises(StackError, match="port 9094 .* also"):
        stack._preflight(list(stack.services))


def test_layout_is_recorded_and_a_different_one_is_refused(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    assert Layout.recorded(s.stack.state_dir) is None
    Layout(3, 2).record(s.stack.state_dir)
    assert json.loads((s.stack.state_dir / LAYOUT_FILE).read_text()) == {"kafka_brokers": 3, "opensearch_nodes": 2}
    assert Stack(s).layout == Layout(3, 2), "down and status act on the recorded nodes"
    Stack(s, None, Layout(1, 2))._check_layout()  # no Kafka data made yet: nothing to protect
    (s.stack.state_dir / "kafka" / "data").mkdir(parents=True)
    with pytest.raises(StackError, match="made for 3 kafka node.*down --wipe"):
        Stack(s, None, Layout(1, 2))._check_layout()
    Stack(s, ["redis"], Layout(1, 2))._check_layout()  # no clustered service involved: allowed


def test_single_node_data_from_before_layouts_counts_as_one_node(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    (s.stack.state_dir / "kafka" / "data").mkdir(parents=True)
    assert Layout.recorded(s.stack.state_dir) == Layout(1, 1)


def test_wipe_removes_every_node_folder_and_the_layout(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    Layout(3, 2).record(s.stack.state_dir)
    for name in ("kafka", "kafka-2", "kafka-3", "kafka-5", "opensearch", "opensearch-2", "redis"):
        (s.stack.state_dir / name / "data").mkdir(parents=True)
    Stack(s, ["kafka", "opensearch"]).down(wipe=True)
    assert sorted(p.name for p in s.stack.state_dir.iterdir()) == ["redis"]


def test_opensearch_client_knows_every_node_and_retries_on_another() -> None:
    from vidsearch.plugins.opensearch.client import make_client

    cfg = OpenSearchSettings(url="http://127.0.0.1:9200, http://127.0.0.1:9201")
    assert cfg.urls == ["http://127.0.0.1:9200", "http://127.0.0.1:9201"]
    client = make_client(cfg, max_retries=0)
    assert len(client.transport.connection_pool.connections) == 2
    assert client.transport.max_retries == 1, "a dead node's request goes to the other one"
    assert make_client(OpenSearchSettings(), max_retries=0).transport.max_retries == 0
