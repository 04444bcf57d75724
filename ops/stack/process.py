"""A background service process tracked by a pid file, started in its own session.

Hand-rolled rather than supervisord/systemd because the stack must run unprivileged-or-root on a
bare machine and in CI with nothing but Python: the pid file records the process start time so a
recycled pid is never mistaken for ours, and stopping signals the whole process group so no
grandchild (a JVM under a shell script) is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# What a service inherits from the caller's environment: enough to find programs, a home, a
# locale and a JDK. Nothing else: the caller's environment may hold secrets (VIDSEARCH_*
# passwords and tokens, cloud credentials) that no service needs. Each service adds its own
# variables through `Launch.env`.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "JAVA_HOME", "OPENSEARCH_JAVA_HOME")


def service_env(own: dict[str, str] | None = None, inherit: tuple[str, ...] = INHERITED_ENV) -> dict[str, str]:
    """A minimal environment for a service or one of its tools: the allow-listed variables of
    ours, then the service's own."""
    env = {name: os.environ[name] for name in inherit if name in os.environ}
    env.setdefault("PATH", os.defpath)
    return {**env, **(own or {})}


@dataclass(frozen=True)
class Launch:
    """How to start a service: argv, its own environment variables (added to `service_env`'s
    minimal set, never to the caller's whole environment), working folder, optional user."""

    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None


def _running(proc: psutil.Process) -> bool:
    """Alive and not a zombie. A zombie has exited; it lingers only until its parent reaps it,
    which we do when the parent is us (a node this process restarted), else its parent will.
    (psutil counts a zombie as running, so `psutil.wait_procs` would wait out its timeout.)"""
    try:
        if proc.status() != psutil.STATUS_ZOMBIE:
            return True
        if proc.ppid() == os.getpid():
            os.waitpid(proc.pid, os.WNOHANG)
    except (psutil.Error, ChildProcessError):
        pass
    return False


def _wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait up to `timeout_s` for `procs` to exit; the ones still running."""
    deadline = time.monotonic() + timeout_s
    alive = [p for p in procs if _running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if _running(p)]
    return alive


class ManagedProcess:
    def __init__(self, name: str, run_dir: Path) -> None:
        self.name = name
        self.run_dir = run_dir
        self.pidfile = run_dir / f"{name}.pid"
        self.logfile = run_dir / f"{name}.log"

    def pid(self) -> int | None:
        """Pid of our live process, or None (a stale pid file is removed)."""
        try:
            pid_text, started = self.pidfile.read_text().split()
            pid = int(pid_text)
            proc = psutil.Process(pid)
            if abs(proc.create_time() - float(started)) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE:
                return pid
        except (FileNotFoundError, ValueError, psutil.Error):
            pass
        self.pidfile.unlink(missing_ok=True)
        return None

    def start(self, launch: Launch) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        argv = list(launch.argv)
        if launch.user:
            # setpriv execs in place (unlike su/runuser), so the pid we record is the service's.
            argv = ["setpriv", f"--reuid={launch.user}", f"--regid={launch.user}", "--init-groups", "--", *argv]
        env = service_env(launch.env)
        with open(self.logfile, "ab") as log:
            log.write(f"\n=== vidsearch: starting {self.name} at {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                cwd=launch.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pidfile.write_text(f"{proc.pid} {psutil.Process(proc.pid).create_time()}")
        return proc.pid

    def exited(self) -> bool:
        return self.pid() is None

    def stop(self, timeout_s: float) -> bool:
        """SIGTERM the process group, SIGKILL what is left after `timeout_s`. True if it ran."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            procs = []
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        alive = _wait_gone(procs, timeout_s)
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                pass
        _wait_gone(alive, 5)
        self.pidfile.unlink(missing_ok=True)
        return True

    def rss_bytes(self) -> int:
        pid = self.pid()
        if pid is None:
            return 0
        try:
            root = psutil.Process(pid)
            return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            return 0

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the service and its children so far (benchmarks take the
        difference over a run to show what the services cost beside the indexer)."""
        pid = self.pid()
        if pid is None:
            return 0.0
        try:
            root = psutil.Process(pid)
            return sum(t.user + t.system for t in (p.cpu_times() for p in [root, *root.children(recursive=True)]))
        except psutil.Error:
            return 0.0

    def tail(self, lines: int = 40) -> str:
        try:
            with open(self.logfile, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 64 * 1024))
                text = fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return "(no log yet)"
        return "\n".join(text.splitlines()[-lines:])
