"""Pure or local-only pieces of the stack: URL ports, pid-tracked processes, JDK discovery,
Maven error summaries and checksum pins."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from vidsearch.core.errors import ConfigError
from vidsearch.ops.stack import maven
from vidsearch.ops.stack.errors import JavaNotFoundError
from vidsearch.ops.stack.java import find_java_home, java_major
from vidsearch.ops.stack.ports import can_bind, port_of_url
from vidsearch.ops.stack.process import Launch, ManagedProcess

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "port"),
    [("127.0.0.1:9092", 9092), ("http://localhost:9200", 9200), ("redis://127.0.0.1:6379/0", 6379)],
)
def test_port_of_url(url: str, port: int) -> None:
    assert port_of_url(url, "svc") == port


@pytest.mark.parametrize("url", ["http://10.0.0.5:9200", "kafka.prod:9092", "http://127.0.0.1"])
def test_port_of_url_refuses_remote_or_portless(url: str) -> None:
    with pytest.raises(ConfigError):
        port_of_url(url, "svc")


def test_can_bind_sees_a_listener() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert can_bind(port) is False
    assert can_bind(port) is True


def test_managed_process_stops_the_whole_group(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", tmp_path)
    script = "import subprocess,time; subprocess.Popen(['sleep','300']); print('up',flush=True); time.sleep(300)"
    pid = proc.start(Launch(argv=[sys.executable, "-c", script], cwd=tmp_path))
    deadline = time.monotonic() + 10
    while "up" not in proc.tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    children = psutil.Process(pid).children(recursive=True)
    assert proc.pid() == pid and children
    assert proc.stop(timeout_s=5) is True
    assert proc.pid() is None
    for p in [pid, *(c.pid for c in children)]:
        assert not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE


def test_stale_pidfile_is_not_ours(tmp_path: Path) -> None:
    proc = ManagedProcess("ghost", tmp_path)
    # Our own pid, but with another start time: a recycled pid must not be adopted.
    proc.pidfile.write_text(f"{psutil.Process().pid} 12345.0")
    assert proc.pid() is None and not proc.pidfile.exists()


def _fake_jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("")
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


def test_java_major_parsing(tmp_path: Path) -> None:
    assert java_major(_fake_jdk(tmp_path, "a", "17.0.15")) == 17
    assert java_major(_fake_jdk(tmp_path, "b", "1.8.0_392")) == 8
    assert java_major(_fake_jdk(tmp_path, "c", "25")) == 25
    assert java_major(tmp_path / "missing") is None


def test_configured_jdk_too_old(tmp_path: Path) -> None:
    old = _fake_jdk(tmp_path, "jdk17", "17.0.1")
    with pytest.raises(JavaNotFoundError, match="21"):
        find_java_home("opensearch", 21, configured=old)
    assert find_java_home("kafka", 17, configured=old) == old


def test_no_jdk_found_names_what_is_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    old = _fake_jdk(tmp_path, "jdk11", "11.0.2")
    monkeypatch.setattr("vidsearch.ops.stack.java.candidate_homes", lambda: [old])
    with pytest.raises(JavaNotFoundError, match="jdk11"):
        find_java_home("opensearch", 21)


def test_maven_reason_lines() -> None:
    assert maven._reason("[ERROR] Failed ...: Could not find artifact x:y:zip:1") == "not served by the Maven repository"
    assert maven._reason("[ERROR] Failed to execute goal: Connection refused") == "Connection refused"


def test_pin_mismatch_rejects_and_removes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out" / "thing-1.zip"

    def fake_mvn(service: str, args: list[str], cwd: Path, repo: Path):  # writes a file like mvn would
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"tampered")
        import subprocess

        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(maven, "_mvn", fake_mvn)
    monkeypatch.setattr(maven, "_pins", lambda: {"g:thing:1:zip": "0" * 64})
    with pytest.raises(maven.DownloadError, match="pinned"):
        maven.fetch_artifact("svc", "g:thing:1:zip", target.parent, tmp_path)
    assert not target.exists()
