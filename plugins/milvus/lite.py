"""A per-catalogue milvus-lite server that several processes share: the embedded default.

Why: milvus-lite (3.x) keeps a catalogue in a *data directory* (a `MilvusClient("x.db")` creates
the folder `x.db/`) and serves it from a gRPC server that pymilvus starts *inside* the calling
process, holding an exclusive `flock` on `x.db/LOCK`. So a second process that opens the same
file fails ("Open local milvus failed"), and an indexer and a `vidsearch search` can never share
a catalogue. `milvus-lite server --data-dir x.db` serves the very same folder (checked: a
catalogue written by the embedded client is served unchanged), so the broker below turns the
embedded URI into "the private server of this catalogue":

* The first process that needs the catalogue starts `python -m vidsearch.plugins.milvus.lite
  serve` in its own session (it outlives its starter), bound to a free loopback port chosen by
  the kernel (port 0: no race between picking and binding), and records `{pid, port, file,
  clients}` in the sidecar `<db>.lite.json`, next to the catalogue so every process that can open
  the catalogue also sees its server. A `flock` on `<db>.lite.lock` serialises start, reuse and
  stop, so two processes never start two servers for one folder.
* Later processes find the sidecar, check that the pid is our server (its command line) and that
  the port answers, add their pid to `clients` and connect to `http://127.0.0.1:<port>`. A stale
  sidecar (dead pid, dead port, a recycled pid) is replaced.
* The server exits by itself once none of its client processes has been alive for
  `idle_s` (a lease by pid, checked every few seconds), so tests and one-off commands leave
  nothing running for long; `stop()` / `stop_all()` (`vidsearch lite stop`) end them at once.
* The server runs with ONE gRPC worker thread: milvus-lite's engine is single-writer per
  collection and its own server docs say concurrent writes are unsafe, so requests from several
  processes are serialised here rather than interleaved inside the engine.

Servers are also listed in a per-user runtime folder (`$XDG_RUNTIME_DIR` or the temp dir), one
file per server pid, so `stop_all()` finds them without knowing every catalogue's path.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from vidsearch.core.errors import InfrastructureError

log = logging.getLogger(__name__)

MODULE = "vidsearch.plugins.milvus.lite"
START_TIMEOUT_S = 60.0
WATCH_INTERVAL_S = 2.0


class LiteServerError(InfrastructureError):
    """The private milvus-lite server of a catalogue could not be started or reached."""


@dataclass(frozen=True)
class Paths:
    db: Path

    @property
    def sidecar(self) -> Path:
        return self.db.with_name(self.db.name + ".lite.json")

    @property
    def lock(self) -> Path:
        return self.db.with_name(self.db.name + ".lite.lock")

    @property
    def log(self) -> Path:
        return self.db.with_name(self.db.name + ".lite.log")


def catalogue_path(uri: str) -> Path:
    """The absolute path of an embedded catalogue URI (`./x.db` is relative to the cwd)."""
    return Path(uri).expanduser().absolute()


def registry_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    path = Path(base) / f"vidsearch-lite-{os.getuid()}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(paths: Paths, blocking: bool = True) -> Iterator[bool]:
    """The catalogue's broker lock; yields False when `blocking` is off and someone holds it."""
    paths.db.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.lock, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read(paths: Paths) -> dict | None:
    try:
        return json.loads(paths.sidecar.read_text())
    except (OSError, ValueError):
        return None


def _write(paths: Paths, record: dict) -> None:
    tmp = paths.sidecar.with_name(paths.sidecar.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(paths.sidecar)  # atomic: a reader sees the old or the new record, never half


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) answers kill(0) but serves nothing
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _is_our_server(pid: int, db: Path) -> bool:
    """The pid runs this module for this catalogue (guards against a recycled pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return pid_alive(pid)  # no /proc: trust the pid and the port check
    return MODULE.encode() in argv and str(db).encode() in argv


def port_answers(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def _healthy(record: dict | None, paths: Paths) -> TypeGuard[dict]:
    if not record:
        return False
    return pid_alive(record["pid"]) and _is_our_server(record["pid"], paths.db) and port_answers(record["port"])


def _terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM (the server closes the catalogue cleanly), then SIGKILL after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _start(paths: Paths, idle_s: float) -> dict:
    """Start the server (caller holds the lock) and wait until it listens."""
    ready = paths.sidecar.with_name(paths.sidecar.name + f".{os.getpid()}.ready")
    ready.unlink(missing_ok=True)
    argv = [sys.executable, "-m", MODULE, "serve", "--data-dir", str(paths.db), "--ready", str(ready),
            "--idle-s", str(idle_s)]
    with open(paths.log, "ab") as logf:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, close_fds=True,
                                start_new_session=True)  # own session: outlives us, no terminal signals
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready.exists():
            port = int(ready.read_text())
            ready.unlink(missing_ok=True)
            record = {"pid": proc.pid, "port": port, "file": str(paths.db), "clients": [], "started": time.time()}
            log.info("milvus-lite server started db=%s pid=%s port=%s", paths.db, proc.pid, port)
            return record
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        _terminate(proc.pid)
    tail = paths.log.read_text(errors="replace").strip().splitlines()[-5:] if paths.log.exists() else []
    raise LiteServerError(f"the milvus-lite server for {paths.db} did not start; log {paths.log}: " + " | ".join(tail))


def endpoint(uri: str, idle_s: float = 300.0) -> str:
    """`http://127.0.0.1:<port>` of the catalogue's server, started when none runs; this
    process is registered as a client, so the server stays up while it lives."""
    paths = Paths(catalogue_path(uri))
    with _locked(paths):
        record = _read(paths)
        if not _healthy(record, paths):
            if record and pid_alive(record["pid"]) and _is_our_server(record["pid"], paths.db):
                _terminate(record["pid"])  # alive but not answering: hung
            record = _start(paths, idle_s)
        clients = [p for p in record.get("clients", []) if pid_alive(p)]
        if os.getpid() not in clients:
            clients.append(os.getpid())
        record["clients"] = clients
        _write(paths, record)
    return f"http://127.0.0.1:{record['port']}"


def running(uri: str) -> dict | None:
    """The sidecar record of the catalogue's live server, or None."""
    paths = Paths(catalogue_path(uri))
    record = _read(paths)
    return record if _healthy(record, paths) else None


def stop(uri: str) -> bool:
    """Stop the catalogue's server; True when one was running."""
    paths = Paths(catalogue_path(uri))
    if not paths.sidecar.exists():
        return False  # never started (and do not create the folder of a mistyped path)
    with _locked(paths):
        record = _read(paths)
        paths.sidecar.unlink(missing_ok=True)
    was = bool(record and pid_alive(record["pid"]) and _is_our_server(record["pid"], paths.db))
    if was and record:  # outside the lock: the server's watchdog must be free to see the signal and exit
        _terminate(record["pid"])
    return was


def servers() -> list[dict]:
    """Every live private server of this user (from the runtime registry)."""
    out = []
    for entry in sorted(registry_dir().glob("*.json")):
        try:
            info = json.loads(entry.read_text())
        except (OSError, ValueError):
            continue
        if pid_alive(info["pid"]) and _is_our_server(info["pid"], Path(info["file"])):
            out.append(info)
        else:
            entry.unlink(missing_ok=True)
    return out


def stop_all() -> list[str]:
    """Stop every private milvus-lite server of this user; the catalogues they served.
    `vidsearch lite stop --all` calls it; `vidsearch stack down` may call it too."""
    return [info["file"] for info in servers() if stop(info["file"])]


# ---------------------------------------------------------------- the server process itself


def _start_server(data_dir: str, timeout: float = 30.0):  # noqa: ANN202 - (grpc.Server, MilvusLite, port)
    """Open and serve the catalogue on a kernel-chosen loopback port with ONE worker thread (see
    the module docstring), waiting for a previous server that is still closing the catalogue."""
    from milvus_lite import DataDirLockedError
    from milvus_lite.adapter.grpc.server import start_server_in_thread

    deadline = time.monotonic() + timeout
    while True:
        try:
            return start_server_in_thread(data_dir=data_dir, host="127.0.0.1", port=0, max_workers=1)
        except DataDirLockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def serve(data_dir: str, ready: Path, idle_s: float) -> None:
    """Run until stopped (SIGTERM/SIGINT) or idle: no client pid alive for `idle_s`."""
    # pymilvus's client calls AllocTimestamp, which milvus-lite does not implement; grpc logs
    # every such call with a traceback. Harmless (pymilvus falls back), so keep the log clean.
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    paths = Paths(Path(data_dir))
    server, db, port = _start_server(data_dir)
    registry = registry_dir() / f"{os.getpid()}.json"
    registry.write_text(json.dumps({"pid": os.getpid(), "port": port, "file": data_dir}))
    ready.write_text(str(port))
    print(f"milvus-lite server pid={os.getpid()} port={port} data_dir={data_dir}", flush=True)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    idle_since: float | None = None
    try:
        while not done.wait(WATCH_INTERVAL_S):
            with _locked(paths, blocking=False) as held:
                if not held:  # a client is joining or stopping us: look again next round
                    continue
                record = _read(paths)
                if record is None or record.get("pid") != os.getpid():
                    if time.time() - os.path.getmtime(registry) > START_TIMEOUT_S:
                        print("replaced or unregistered; exiting", flush=True)
                        break
                    continue  # the starter has not written the sidecar yet
                clients = [p for p in record.get("clients", []) if pid_alive(p)]
                if clients:
                    idle_since = None
                    continue
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= idle_s:
                    paths.sidecar.unlink(missing_ok=True)  # under the lock: nobody joins a dying server
                    print(f"idle for {idle_s}s; exiting", flush=True)
                    break
    finally:
        server.stop(grace=2).wait()
        db.close()
        registry.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="serve one catalogue (started by endpoint(), not by hand)")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--ready", required=True, type=Path)
    p.add_argument("--idle-s", type=float, default=300.0)
    args = parser.parse_args(argv)
    serve(args.data_dir, args.ready, args.idle_s)


if __name__ == "__main__":
    main()
