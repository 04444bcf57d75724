"""Apache Kafka 4.x, single node, KRaft combined mode, from Maven Central jars."""

from __future__ import annotations

import subprocess
from pathlib import Path

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


class KafkaService:
    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        stack = settings.stack
        self.port = port_of_url(settings.kafka.bootstrap_servers.split(",")[0], self.name)
        self.controller_port = stack.kafka_controller_port
        self.home = stack.cache_dir / "kafka" / stack.kafka_version
        self.state = stack.state_dir / "kafka"

    def ports(self) -> dict[str, int]:
        return {"broker": self.port, "controller": self.controller_port}

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
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.state / "data"),
            "num.partitions": "3",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
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

    def launch(self) -> Launch:
        java = self._java()
        server = self._write_config()
        if not (self.state / "data" / "meta.properties").exists():
            cluster_id = self._storage_tool(java, "random-uuid").splitlines()[-1].strip()
            self._storage_tool(java, "format", "-t", cluster_id, "-c", str(server))
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
        if not is_listening(self.port):
            return Health(False, error=f"nothing listens on 127.0.0.1:{self.port}")
        try:
            from confluent_kafka.admin import AdminClient

            from vidsearch.connector.kafka.config import kafka_client_config

            admin = AdminClient({**kafka_client_config(self.settings.kafka), "log_level": 0})
            meta = admin.list_topics(timeout=5)
        except Exception as exc:  # any client failure means "not healthy yet"
            return Health(False, error=f"metadata request failed: {exc}")
        if not meta.brokers:
            return Health(False, error="no broker in cluster metadata")
        version = (self.home / ".installed").read_text().strip() if (self.home / ".installed").exists() else None
        return Health(True, version, {"brokers": len(meta.brokers), "cluster_id": meta.cluster_id, "port": self.port})
