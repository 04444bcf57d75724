"""Bring the local stack up, down, report on it: the part every service shares.

`up` is idempotent: a service whose tracked process is alive and healthy is left alone. Before
anything starts, every needed port is checked, so a port held by someone else fails fast with a
message naming the holder instead of a service crashing half-way through its boot.
"""

from __future__ import annotations

import logging
import os
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

SERVICE_TYPES: dict[str, Callable[[Settings], Service]] = {
    "kafka": KafkaService,
    "opensearch": OpenSearchService,
    "redis": RedisService,
    "milvus": MilvusService,
}


@dataclass
class UpResult:
    service: str
    seconds: float
    already_running: bool
    health: Health


class Stack:
    def __init__(self, settings: Settings, only: list[str] | None = None) -> None:
        self.settings = settings
        names = only or list(settings.stack.services)
        unknown = set(names) - set(SERVICE_TYPES)
        if unknown:
            raise StackError("stack", f"unknown service(s) {sorted(unknown)}; known: {sorted(SERVICE_TYPES)}")
        self.services: dict[str, Service] = {n: SERVICE_TYPES[n](settings) for n in SERVICE_TYPES if n in names}

    def process(self, name: str) -> ManagedProcess:
        return ManagedProcess(name, self.settings.stack.state_dir / name)

    def _preflight(self, to_start: list[str]) -> None:
        for name in to_start:
            for role, port in self.services[name].ports().items():
                if not can_bind(port):
                    raise PortInUseError(
                        name,
                        f"port {port} ({role}) on 127.0.0.1 is already in use by {port_owner(port)}; "
                        "stop it or configure another port (see `vidsearch config show`)",
                    )

    def up(self, on_event: Callable[[str, str], None] = lambda s, m: None) -> list[UpResult]:
        """Install, start and wait for every service; returns per-service start time."""
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
        for name in to_start:
            seconds, health = healthy[name]
            results.append(UpResult(name, seconds, False, health))
        order = list(self.services)
        return sorted(results, key=lambda r: order.index(r.service))

    def _wait_healthy(
        self, names: list[str], started: dict[str, float], on_event: Callable[[str, str], None]
    ) -> dict[str, tuple[float, Health]]:
        """Probe all starting services together, so each one's time is its own start-up time."""
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

    def down(self) -> dict[str, bool]:
        """Stop every tracked service (reverse order) and wait until its ports are released."""
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
        return stopped

    def status(self) -> dict[str, Any]:
        services: dict[str, Any] = {}
        for name, svc in self.services.items():
            proc = self.process(name)
            health = svc.probe()
            entry = health.as_dict()
            runs = bool(svc.ports())  # an embedded service has no process of its own
            entry["pid"] = proc.pid() if runs else None
            entry["rss_mb"] = round(proc.rss_bytes() / 2**20, 1) if runs else 0.0
            services[name] = entry
        return {"services": services, "healthy": all(s["healthy"] for s in services.values())}

    def rss_bytes(self) -> int:
        return sum(self.process(name).rss_bytes() for name in self.services)

    def disk_bytes(self) -> dict[str, int]:
        """Bytes in each service's `data` folder (logs and configuration left out): benchmarks take
        the difference over a run to show how much disk a catalogue of that size holds."""
        out: dict[str, int] = {}
        for name in self.services:
            data = self.settings.stack.state_dir / name / "data"
            if data.is_dir():  # a service this stack does not run here has no folder to count
                out[name] = _tree_bytes(data)
        return out

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each service that runs as a process of its own."""
        return {name: self.process(name).cpu_seconds() for name, svc in self.services.items() if svc.ports()}

    def logs(self, name: str, lines: int) -> str:
        if name not in self.services:
            raise StackError(name, f"not a service of this stack ({', '.join(self.services)})")
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
