"""The embedded default shared by several processes at once: two `vidsearch ingest` runs, a
`vidsearch search` and a `vidsearch serve` against ONE milvus-lite catalogue (a path), as a user
runs them in several terminals. No stack service is involved.

Events carry precomputed features (no video model runs); the text encoder still embeds the
metadata and the queries."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from vidsearch.ops.bench import events as ev
from vidsearch.plugins.milvus import lite

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

VIDSEARCH = str(Path(sys.executable).parent / "vidsearch")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _events(path: Path, prefix: str, word: str, n: int) -> set[str]:
    ids = [f"{prefix}{i}" for i in range(n)]
    path.write_bytes(b"\n".join(ev.upsert(vid, 1, seed=i, title=f"{word} {vid}", description=f"a {word} clip")
                                for i, vid in enumerate(ids)) + b"\n")
    return set(ids)


def _get(url: str, timeout: float = 120.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback test server
        return json.loads(resp.read())


def _wait_health(base: str, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "vidsearch serve exited: " + (proc.stderr.read() if proc.stderr else "")[-3000:]
        try:
            _get(f"{base}/health", timeout=5)
            return
        except OSError:
            time.sleep(1)
    raise AssertionError("vidsearch serve did not answer /health")


@pytest.mark.slow  # ~40 s: several CLI processes, each loading the text model
def test_ingest_search_and_serve_share_one_embedded_catalogue(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    env = {**os.environ, "VIDSEARCH_MILVUS__URI": str(db), "VIDSEARCH_STACK__STATE_DIR": str(tmp_path / "state"),
           "VIDSEARCH_MILVUS__LITE_IDLE_S": "30"}
    env.pop("VIDSEARCH_CONFIG", None)
    first = _events(tmp_path / "a.jsonl", "a", "zebracorn", 24)
    second = _events(tmp_path / "b.jsonl", "b", "quokkafish", 24)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"

    def ingest(name: str) -> subprocess.Popen:
        return subprocess.Popen([VIDSEARCH, "ingest", "--source", f"file:{tmp_path / name}", "--json"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def search(q: str) -> subprocess.Popen:
        return subprocess.Popen([VIDSEARCH, "search", q, "-k", "30", "--json"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finished(proc: subprocess.Popen, what: str) -> str:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{what} failed: {err[-3000:]}"
        assert "Traceback" not in err, err[-3000:]
        return out

    serve = subprocess.Popen([VIDSEARCH, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        # 1. an indexer and the API start together on a catalogue that does not exist yet
        a = ingest("a.jsonl")
        report = json.loads(finished(a, "ingest a"))
        assert (report["indexed"], report["dead"]) == (24, 0), report
        _wait_health(base, serve)
        # 2. a second indexer, a CLI search and HTTP searches, all at once
        b = ingest("b.jsonl")
        s1 = search("zebracorn")
        http_hits = {h["video_id"] for h in _get(f"{base}/search?" + urllib.parse.urlencode({"q": "zebracorn", "k": 30}))["hits"]}
        cli_hits = {h["video_id"] for h in json.loads(finished(s1, "search zebracorn"))["hits"]}
        report = json.loads(finished(b, "ingest b"))
        assert (report["indexed"], report["dead"]) == (24, 0), report
        assert first <= cli_hits, sorted(first - cli_hits)
        assert first <= http_hits, sorted(first - http_hits)
        # 3. what the second indexer wrote is visible to every other process
        s2 = search("quokkafish")
        http2 = {h["video_id"] for h in _get(f"{base}/search?" + urllib.parse.urlencode({"q": "quokkafish", "k": 30}))["hits"]}
        cli2 = {h["video_id"] for h in json.loads(finished(s2, "search quokkafish"))["hits"]}
        assert second <= cli2 and second <= http2, (sorted(second - cli2), sorted(second - http2))
        # one private server served them all
        record = lite.running(str(db))
        assert record is not None and record["file"] == str(db)
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        assert lite.stop(str(db)) or lite.running(str(db)) is None
    assert lite.running(str(db)) is None


def test_a_stale_sidecar_is_replaced_and_stop_ends_the_server(tmp_path: Path) -> None:
    db = tmp_path / "stale.db"
    sidecar = tmp_path / "stale.db.lite.json"
    sidecar.write_text(json.dumps({"pid": 2**22 + 17, "port": _free_port(), "file": str(db), "clients": []}))
    uri = lite.endpoint(str(db), idle_s=30)
    try:
        record = lite.running(str(db))
        assert record is not None and uri == f"http://127.0.0.1:{record['port']}"
        assert record["pid"] != 2**22 + 17 and os.getpid() in record["clients"]
        assert lite.endpoint(str(db), idle_s=30) == uri  # a second open reuses it
    finally:
        assert lite.stop(str(db))
    assert lite.running(str(db)) is None and not lite.pid_alive(record["pid"])
