"""Apache Kafka 4.x in KRaft mode, from Maven Central jars: one broker, or a cluster of several.

Each broker is a node of its own (process, ports, data folder). With 3 or more brokers the first
3 are also the controller quorum (combined mode), so the cluster survives the loss of any one
node; with fewer, node 1 is the only controller. Every node is formatted with the same cluster
id, kept in node 1's folder.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from vidsearch.core.settings import Settings
from vidsearch.ops.stack import maven
from vidsearch.ops.stack.errors import ServiceStartError
from vidsearch.ops.stack.java import find_java_home
from vidsearch.ops.stack.ports import is_listening, port_of_url
from vidsearch.ops.stack.process import Launch, service_env
from vidsearch.ops.stack.services.base import Health

# Kafka's Maven pom brings log4j-core but no SLF4J binding (the release tarball adds one);
# without it the broker logs nothing. Same log4j version as Kafka 4.1's own dependency.
LOG4J_SLF4J = ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3")

_LOG4J2 = """status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


def node_name(node: int) -> str:
    """Node 1 keeps the single-node name (and so its folder and pid file); others are numbered."""
    return "kafka" if node == 1 else f"kafka-{node}"


class KafkaService:
    kind = "kafka"

    def __init__(self, settings: Settings, node: int = 1, brokers: int = 1) -> None:
        self.settings = settings
        stack = settings.stack
        self.node, self.brokers = node, brokers
        self.name = node_name(node)
        self.voters = 3 if brokers >= 3 else 1
        self.is_controller = node <= self.voters
        first = port_of_url(settings.kafka.bootstrap_servers.split(",")[0], self.kind)
        self.port = first + 2 * (node - 1)
        self.controller_port = stack.kafka_controller_port + 2 * (node - 1)
        self.home = stack.cache_dir / "kafka" / stack.kafka_version
        self.state = stack.state_dir / self.name
        self.cluster_id_file = stack.state_dir / node_name(1) / "cluster.id"

    def ports(self) -> dict[str, int]:
        return {"broker": self.port, **({"controller": self.controller_port} if self.is_controller else {})}

    def _controller_port_of(self, node: int) -> int:
        return self.settings.stack.kafka_controller_port + 2 * (node - 1)

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    def install(self) -> None:
        marker = self.home / ".installed"
        if marker.exists():
            return
        self.libs.mkdir(parents=True, exist_ok=True)
        deps = [("org.apache.kafka", "kafka_2.13", self.settings.stack.kafka_version), LOG4J_SLF4J]
        maven.copy_dependencies(self.name, deps, self.libs, self.settings.stack.maven_repo)
        marker.write_text(self.settings.stack.kafka_version)

    def _java(self) -> str:
        home = find_java_home(self.name, 17, self.settings.stack.kafka_java_home, prefer="lowest")
        return str(home / "bin" / "java")

    def _write_config(self) -> Path:
        conf = self.state / "config"
        conf.mkdir(parents=True, exist_ok=True)
        listeners = f"PLAINTEXT://127.0.0.1:{self.port}"
        if self.is_controller:
            listeners += f",CONTROLLER://127.0.0.1:{self.controller_port}"
        # Kafka's own topics (group offsets, transactions) get the same protection a production
        # cluster gives them: 3 copies, 2 in sync, as far as there are brokers for it.
        internal_rf, internal_isr = str(min(3, self.brokers)), str(min(2, self.brokers))
        props = {
            "process.roles": "broker,controller" if self.is_controller else "broker",
            "node.id": str(self.node),
            "controller.quorum.voters": ",".join(
                f"{n}@127.0.0.1:{self._controller_port_of(n)}" for n in range(1, self.voters + 1)
            ),
            "listeners": listeners,
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.state / "data"),
            "num.partitions": "3",
            "default.replication.factor": internal_rf,
            "offsets.topic.replication.factor": internal_rf,
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": internal_rf,
            "transaction.state.log.min.isr": internal_isr,
            "share.coordinator.state.topic.replication.factor": internal_rf,
            "share.coordinator.state.topic.min.isr": internal_isr,
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "message.max.bytes": str(16 * 1024 * 1024),
        }
        server = conf / "server.properties"
        server.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (conf / "log4j2.properties").write_text(_LOG4J2)
        return server

    def _storage_tool(self, java: str, *args: str) -> str:
        cmd = [java, "-Xmx256m", "-cp", f"{self.libs}/*", "kafka.tools.StorageTool", *args]
        env_log = f"-Dlog4j2.configurationFile={self.state / 'config' / 'log4j2.properties'}"
        cmd.insert(1, env_log)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=service_env())
        if res.returncode != 0:
            raise ServiceStartError(self.name, f"StorageTool {args[0]} failed", (res.stdout + res.stderr)[-3000:])
        return res.stdout.strip()

    def _cluster_id(self, java: str) -> str:
        """The id every node of this cluster is formatted with: made once, by whichever node
        launches first, and kept in node 1's folder."""
        if self.cluster_id_file.exists():
            return self.cluster_id_file.read_text().strip()
        cluster_id = self._storage_tool(java, "random-uuid").splitlines()[-1].strip()
        self.cluster_id_file.parent.mkdir(parents=True, exist_ok=True)
        self.cluster_id_file.write_text(cluster_id)
        return cluster_id

    def launch(self) -> Launch:
        java = self._java()
        server = self._write_config()
        if not (self.state / "data" / "meta.properties").exists():
            self._storage_tool(java, "format", "-t", self._cluster_id(java), "-c", str(server))
        heap = self.settings.stack.kafka_heap
        argv = [
            java,
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.state / 'config' / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.state / 'logs'}",
            "-cp",
            f"{self.libs}/*",
            "kafka.Kafka",
            str(server),
        ]
        return Launch(argv=argv, cwd=self.state)

    def probe(self) -> Health:
        """This broker's own view: it answers metadata requests and counts itself a live broker."""
        if not is_listening(self.port):
            return Health(False, error=f"nothing listens on 127.0.0.1:{self.port}")
        try:
            meta = cluster_metadata(self.settings, f"127.0.0.1:{self.port}")
        except Exception as exc:  # any client failure means "not healthy yet"
            return Health(False, error=f"metadata request failed: {exc}")
        if self.node not in meta.brokers:
            return Health(False, error=f"broker {self.node} is not (yet) a live broker of the cluster")
        version = (self.home / ".installed").read_text().strip() if (self.home / ".installed").exists() else None
        detail = {"brokers": len(meta.brokers), "cluster_id": meta.cluster_id, "port": self.port,
                  "under_replicated_partitions": under_replicated(meta)}
        return Health(True, version, detail)


def cluster_metadata(settings: Settings, bootstrap: str) -> Any:
    """Cluster metadata as one broker sees it (confluent-kafka's ClusterMetadata)."""
    from confluent_kafka.admin import AdminClient

    from vidsearch.connector.kafka.config import kafka_client_config

    config = {**kafka_client_config(settings.kafka), "bootstrap.servers": bootstrap, "log_level": 0}
    return AdminClient(config).list_topics(timeout=5)


def under_replicated(meta: Any) -> int:
    """Partitions with fewer in-sync replicas than replicas: what alerting watches on a cluster."""
    return sum(1 for topic in meta.topics.values() for p in topic.partitions.values() if len(p.isrs) < len(p.replicas))
