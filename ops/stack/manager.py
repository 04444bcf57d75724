"""Bring the local stack up, down, report on it: the part every service shares.

A service runs as one node or, for Kafka and OpenSearch, as a cluster of several on 127.0.0.1
(each node its own process, ports and folder); the manager starts and stops nodes and reports
per service kind.

`up` is idempotent: a service whose tracked process is alive and healthy is left alone. Before
anything starts, every needed port is checked, so a port held by someone else fails fast with a
message naming the holder instead of a service crashing half-way through its boot.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidsearch.core.settings import Settings
from vidsearch.ops.stack.errors import PortInUseError, ServiceStartError, StackError
from vidsearch.ops.stack.ports import can_bind, port_owner
from vidsearch.ops.stack.process import ManagedProcess
from vidsearch.ops.stack.services.base import Health, Service
from vidsearch.ops.stack.services.kafka import KafkaService
from vidsearch.ops.stack.services.milvus import MilvusService
from vidsearch.ops.stack.services.opensearch import OpenSearchService
from vidsearch.ops.stack.services.redis import RedisService

log = logging.getLogger(__name__)
LAYOUT_FILE = "layout.json"


@dataclass(frozen=True)
class Layout:
    """How many nodes of each clustered service the stack runs. The layout of the last `up` is
    recorded in the state folder, so `down`, `status` and a plain `up` act on the same nodes, and
    data made for one layout is never started under another (a Kafka log formatted for one
    controller quorum cannot join another)."""

    kafka_brokers: int = 1
    opensearch_nodes: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        return cls(settings.stack.kafka_brokers, settings.stack.opensearch_nodes)

    @classmethod
    def recorded(cls, state_dir: Path) -> Layout | None:
        """The layout the stack's data was made for; a state folder from before layouts were
        recorded (node 1's data only) was single-node."""
        try:
            raw = json.loads((state_dir / LAYOUT_FILE).read_text())
            return cls(int(raw["kafka_brokers"]), int(raw["opensearch_nodes"]))
        except FileNotFoundError:
            legacy = (state_dir / "kafka" / "data").is_dir() or (state_dir / "opensearch" / "data").is_dir()
            return cls() if legacy else None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StackError("stack", f"{state_dir / LAYOUT_FILE} is unreadable ({exc}); `vidsearch stack down --wipe` starts over") from exc

    def record(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / LAYOUT_FILE).write_text(json.dumps(self.as_dict()))

    def as_dict(self) -> dict[str, int]:
        return {"kafka_brokers": self.kafka_brokers, "opensearch_nodes": self.opensearch_nodes}


# Each service kind as the nodes it runs under a layout (one for the services that never cluster).
NODE_FACTORIES: dict[str, Callable[[Settings, Layout], list[Service]]] = {
    "kafka": lambda s, lay: [KafkaService(s, k, lay.kafka_brokers) for k in range(1, lay.kafka_brokers + 1)],
    "opensearch": lambda s, lay: [OpenSearchService(s, k, lay.opensearch_nodes) for k in range(1, lay.opensearch_nodes + 1)],
    "redis": lambda s, lay: [RedisService(s)],
    "milvus": lambda s, lay: [MilvusService(s)],
}


@dataclass
class UpResult:
    service: str
    seconds: float
    already_running: bool
    health: Health


class Stack:
    def __init__(self, settings: Settings, only: list[str] | None = None, layout: Layout | None = None) -> None:
        self.settings = settings
        kinds = only or list(settings.stack.services)
        unknown = set(kinds) - set(NODE_FACTORIES)
        if unknown:
            raise StackError("stack", f"unknown service(s) {sorted(unknown)}; known: {sorted(NODE_FACTORIES)}")
        self.recorded = Layout.recorded(settings.stack.state_dir)
        self.layout = layout or self.recorded or Layout.from_settings(settings)
        # Every node by its name (`kafka`, `kafka-2`, ...), and the nodes of each kind, in order.
        self.services: dict[str, Service] = {}
        self.kinds: dict[str, list[str]] = {}
        for kind in NODE_FACTORIES:
            if kind in kinds:
                for node in NODE_FACTORIES[kind](settings, self.layout):
                    self.services[node.name] = node
                    self.kinds.setdefault(kind, []).append(node.name)

    def process(self, name: str) -> ManagedProcess:
        return ManagedProcess(name, self.settings.stack.state_dir / name)

    def _check_layout(self) -> None:
        """Refuse to start data made for another layout, naming the way out."""
        if self.recorded is None or self.recorded == self.layout:
            return
        for kind, was, now in (("kafka", self.recorded.kafka_brokers, self.layout.kafka_brokers),
                               ("opensearch", self.recorded.opensearch_nodes, self.layout.opensearch_nodes)):
            made = (self.settings.stack.state_dir / kind / "data").is_dir()  # no data yet: nothing to protect
            if kind in self.kinds and was != now and made:
                raise StackError(
                    kind,
                    f"the stack's data was made for {was} {kind} node(s), not {now}; run `vidsearch stack down --wipe` "
                    "(this deletes every topic, index and collection of the local stack) or start it with the recorded layout",
                )

    def _preflight(self, to_start: list[str]) -> None:
        owners: dict[int, str] = {}
        for name, svc in self.services.items():
            for role, port in svc.ports().items():
                if port in owners:
                    raise StackError(name, f"port {port} ({role}) is also {owners[port]}'s: with several nodes, node k uses the "
                                           "first node's ports + 2(k-1) for Kafka and + (k-1) for OpenSearch; move the ports apart")
                owners[port] = name
        for name in to_start:
            for role, port in self.services[name].ports().items():
                if not can_bind(port):
                    raise PortInUseError(
                        name,
                        f"port {port} ({role}) on 127.0.0.1 is already in use by {port_owner(port)}; "
                        "stop it or configure another port (see `vidsearch config show`)",
                    )

    def up(self, on_event: Callable[[str, str], None] = lambda s, m: None) -> list[UpResult]:
        """Install, start and wait for every node; returns per-node start time."""
        self._check_layout()
        results: list[UpResult] = []
        to_start: list[str] = []
        for name, svc in self.services.items():
            proc = self.process(name)
            if proc.pid() is not None:
                health = svc.probe()
                if health.healthy:
                    results.append(UpResult(name, 0.0, True, health))
                    on_event(name, "already running")
                    continue
                on_event(name, "running but unhealthy: restarting")
                proc.stop(self.settings.stack.stop_timeout_s)
            to_start.append(name)
        self._preflight(to_start)
        for name in to_start:
            on_event(name, "installing")
            self.services[name].install()
        started: dict[str, float] = {}
        for name in to_start:
            launch = self.services[name].launch()
            started[name] = time.monotonic()
            if launch is not None:
                pid = self.process(name).start(launch)
                log.info("service started service=%s pid=%s", name, pid)
                on_event(name, f"started (pid {pid}), waiting for health")
        healthy = self._wait_healthy(to_start, started, on_event)
        self._settle(to_start, on_event)
        self.layout.record(self.settings.stack.state_dir)
        self.recorded = self.layout
        for name in to_start:
            seconds, health = healthy[name]
            results.append(UpResult(name, seconds, False, health))
        order = list(self.services)
        return sorted(results, key=lambda r: order.index(r.service))

    def _settle(self, started: list[str], on_event: Callable[[str, str], None]) -> None:
        """A multi-node OpenSearch is handed over green: wait (bounded) for its replicas once its
        nodes answer. A cluster that stays yellow is logged and reported, not failed: its nodes
        are up, and `stack status` shows what is unassigned."""
        search = [svc for n in started if isinstance(svc := self.services[n], OpenSearchService)]
        if not search or search[0].nodes == 1:
            return  # (settle itself also returns at once for one node; this only skips the message)
        on_event(search[0].name, "waiting for the cluster to turn green")
        reason = search[0].settle(self.settings.stack.start_timeout_s)
        if reason:
            log.warning("opensearch cluster not settled reason=%s", reason)
            on_event(search[0].name, f"not settled: {reason}")

    def start_node(self, name: str) -> int | None:
        """Start one node of the recorded layout again (after it was stopped or killed) without
        waiting for it: fault drills and rolling restarts bring nodes back one at a time."""
        launch = self.services[name].launch()
        return None if launch is None else self.process(name).start(launch)

    def wait_node(self, name: str) -> float:
        """Seconds until node `name` answers healthy (ServiceStartError if it exits or times out)."""
        return self._wait_healthy([name], {name: time.monotonic()}, lambda s, m: None)[name][0]

    def _wait_healthy(
        self, names: list[str], started: dict[str, float], on_event: Callable[[str, str], None]
    ) -> dict[str, tuple[float, Health]]:
        """Probe all starting nodes together, so each one's time is its own start-up time (and
        the nodes of a cluster, which wait for each other, can form it)."""
        deadline = time.monotonic() + self.settings.stack.start_timeout_s
        pending, done = list(names), {}
        last: dict[str, Health] = {}
        while pending:
            for name in list(pending):
                svc, proc = self.services[name], self.process(name)
                last[name] = health = svc.probe()
                if health.healthy:
                    done[name] = (time.monotonic() - started[name], health)
                    pending.remove(name)
                    on_event(name, f"healthy in {done[name][0]:.1f}s")
                elif svc.ports() and proc.exited():
                    raise ServiceStartError(name, "exited during start-up", proc.tail())
            if pending and time.monotonic() > deadline:
                name = pending[0]
                raise ServiceStartError(
                    name,
                    f"not healthy after {self.settings.stack.start_timeout_s:.0f}s: {last[name].error}",
                    self.process(name).tail(),
                )
            if pending:
                time.sleep(0.3)
        return done

    def down(self, wipe: bool = False) -> dict[str, bool]:
        """Stop every tracked node (reverse order) and wait until its ports are released. With
        `wipe`, also delete the stopped services' folders (data, logs, configuration)."""
        stopped: dict[str, bool] = {}
        for name in reversed(list(self.services)):
            stopped[name] = self.process(name).stop(self.settings.stack.stop_timeout_s)
        deadline = time.monotonic() + 10
        for name in stopped:
            if not stopped[name]:
                continue
            for port in self.services[name].ports().values():
                while not can_bind(port) and time.monotonic() < deadline:
                    time.sleep(0.2)
        if wipe:
            self._wipe()
        return stopped

    def _wipe(self) -> None:
        state = self.settings.stack.state_dir
        for kind in self.kinds:
            # Nodes of any earlier layout too (`kafka-4` of a bigger cluster), if none still runs.
            for folder in [state / kind, *state.glob(f"{kind}-[0-9]*")]:
                if folder.is_dir() and self.process(folder.name).pid() is None:
                    shutil.rmtree(folder)
        if set(self.kinds) >= {"kafka", "opensearch"}:
            (state / LAYOUT_FILE).unlink(missing_ok=True)

    def node_status(self, name: str) -> dict[str, Any]:
        svc, proc = self.services[name], self.process(name)
        entry = svc.probe().as_dict()
        runs = bool(svc.ports())  # an embedded service has no process of its own
        entry["pid"] = proc.pid() if runs else None
        entry["rss_mb"] = round(proc.rss_bytes() / 2**20, 1) if runs else 0.0
        return entry

    def status(self) -> dict[str, Any]:
        """Per service kind: the cluster as a healthy node sees it (live `brokers` for Kafka,
        `nodes` and `cluster_status` for OpenSearch), healthy only if every node is, and each
        node's own health under `members`."""
        services: dict[str, Any] = {}
        for kind, names in self.kinds.items():
            members = {name: self.node_status(name) for name in names}
            view = next((m for m in members.values() if m["healthy"]), members[names[0]])
            entry = {**{k: v for k, v in view.items() if k != "error"}, "healthy": all(m["healthy"] for m in members.values()),
                     "pid": members[names[0]]["pid"], "rss_mb": round(sum(m["rss_mb"] for m in members.values()), 1),
                     "members": members}
            if kind == "kafka":
                entry["brokers"] = view.get("brokers", 0) if view["healthy"] else 0
            if kind == "opensearch":
                entry["nodes"] = view.get("nodes", 0) if view["healthy"] else 0
            errors = [f"{n}: {m['error']}" if len(names) > 1 else m["error"] for n, m in members.items() if m.get("error")]
            if errors:
                entry["error"] = "; ".join(errors)
            services[kind] = entry
        return {"services": services, "healthy": all(s["healthy"] for s in services.values()), "layout": self.layout.as_dict()}

    def rss_bytes(self) -> int:
        return sum(self.process(name).rss_bytes() for name in self.services)

    def disk_bytes(self) -> dict[str, int]:
        """Bytes in each node's `data` folder (logs and configuration left out): benchmarks take
        the difference over a run to show how much disk a catalogue of that size holds."""
        out: dict[str, int] = {}
        for name in self.services:
            data = self.settings.stack.state_dir / name / "data"
            if data.is_dir():  # a service this stack does not run here has no folder to count
                out[name] = _tree_bytes(data)
        return out

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each node that runs as a process of its own."""
        return {name: self.process(name).cpu_seconds() for name, svc in self.services.items() if svc.ports()}

    def logs(self, name: str, lines: int) -> str:
        if name not in self.services:
            raise StackError(name, f"not a node of this stack ({', '.join(self.services)})")
        return self.process(name).tail(lines)


def _tree_bytes(root: Path) -> int:
    """Sum of file sizes under `root`; files a running service deletes meanwhile (merged segments,
    rolled logs) are skipped rather than failing the count."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name), follow_symlinks=False).st_size
            except OSError:
                continue
    return total
