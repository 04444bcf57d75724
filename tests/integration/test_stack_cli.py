"""`vidsearch stack` end to end, on a second stack with its own ports and state folder.

The session stack other tests use is left alone; this one is started twice (idempotent), checked,
stopped (no listener may remain), and refused when a port is taken.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from vidsearch.core.settings import Settings
from vidsearch.ops.stack.ports import is_listening

pytestmark = [pytest.mark.integration, pytest.mark.slow]
VIDSEARCH = str(Path(sys.executable).parent / "vidsearch")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture
def alt_env(settings: Settings) -> Iterator[dict[str, str]]:
    """Environment for a separate stack: fresh ports and state, the shared download cache."""
    kafka, controller, http, transport, redis, milvus = _free_ports(6)
    # Under the configured state dir (not pytest's 0700 tmp), so OpenSearch's service user can enter.
    state = settings.stack.state_dir / f"clitest-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "VIDSEARCH_STACK__STATE_DIR": str(state),
        "VIDSEARCH_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "VIDSEARCH_STACK__KAFKA_CONTROLLER_PORT": str(controller),
        "VIDSEARCH_OPENSEARCH__URL": f"http://127.0.0.1:{http}",
        "VIDSEARCH_STACK__OPENSEARCH_TRANSPORT_PORT": str(transport),
        "VIDSEARCH_REDIS__URL": f"redis://127.0.0.1:{redis}/0",
        "VIDSEARCH_MILVUS__URI": f"http://127.0.0.1:{milvus}",
    }
    env["_PORTS"] = json.dumps([kafka, controller, http, transport, redis, milvus])
    yield env
    subprocess.run([VIDSEARCH, "stack", "down"], env=env, capture_output=True, timeout=120)
    shutil.rmtree(state, ignore_errors=True)


def _cli(env: dict[str, str], *args: str, timeout: int = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VIDSEARCH, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_up_twice_status_down(alt_env: dict[str, str]) -> None:
    first = _cli(alt_env, "stack", "up", "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads(first.stdout)
    assert set(report["services"]) == {"kafka", "opensearch", "redis", "milvus"}
    assert not any(s["already_running"] for s in report["services"].values())
    assert report["rss_mb"] > 0

    status = json.loads(_cli(alt_env, "stack", "status", "--json").stdout)
    pids = {name: s["pid"] for name, s in status["services"].items()}
    assert status["healthy"] is True
    assert all(s["version"] for s in status["services"].values())
    assert "opensearch-knn" in status["services"]["opensearch"]["plugins"]
    assert status["services"]["opensearch"]["version"].startswith("3.")

    second = _cli(alt_env, "stack", "up", "--json")
    assert second.returncode == 0, second.stderr[-3000:]
    assert all(s["already_running"] for s in json.loads(second.stdout)["services"].values())
    again = json.loads(_cli(alt_env, "stack", "status", "--json").stdout)
    assert {n: s["pid"] for n, s in again["services"].items()} == pids, "second `up` restarted something"

    down = _cli(alt_env, "stack", "down", "--json")
    assert down.returncode == 0, down.stderr
    assert all(json.loads(down.stdout)["stopped"].values())
    for port in json.loads(alt_env["_PORTS"]):
        assert not is_listening(port), f"port {port} still has a listener after `stack down`"
    for name, pid in pids.items():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, f"{name} left behind"
    after = _cli(alt_env, "stack", "status", "--json")
    assert after.returncode == 1 and json.loads(after.stdout)["healthy"] is False


def test_port_taken_fails_fast_and_starts_nothing(alt_env: dict[str, str]) -> None:
    kafka_port, redis_port = json.loads(alt_env["_PORTS"])[0], json.loads(alt_env["_PORTS"])[4]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", kafka_port))
        squatter.listen()
        res = _cli(alt_env, "stack", "up", "-s", "redis", "-s", "kafka", timeout=120)
    assert res.returncode == 1
    assert f"port {kafka_port}" in res.stderr and "already in use" in res.stderr
    assert not is_listening(redis_port), "a service was started although the preflight failed"


def test_crashing_service_shows_its_log(alt_env: dict[str, str], tmp_path: Path) -> None:
    fake = tmp_path / "broken-redis"
    fake.write_text("#!/bin/sh\necho 'FATAL: simulated crash of the redis binary' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {**alt_env, "VIDSEARCH_STACK__REDIS_SERVER": str(fake)}
    res = _cli(env, "stack", "up", "-s", "redis", timeout=120)
    assert res.returncode == 1
    assert "exited during start-up" in res.stderr
    assert "simulated crash of the redis binary" in res.stderr


def test_unknown_service_is_a_usage_error(alt_env: dict[str, str]) -> None:
    res = _cli(alt_env, "stack", "status", "-s", "cassandra")
    assert res.returncode == 2 and "unknown service" in res.stderr
