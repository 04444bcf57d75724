"""The local stack under root: a symlink-safe chown confined to the stack's folders, a minimal
service environment, and a Redis password kept off the command line."""

from __future__ import annotations

import os
import socket
import stat
import sys
import time
from pathlib import Path

import psutil
import pytest
from pydantic import SecretStr

from vidsearch.core.settings import RedisSettings, Settings, StackSettings
from vidsearch.ops.stack import ownership
from vidsearch.ops.stack.errors import StackError
from vidsearch.ops.stack.process import Launch, ManagedProcess, service_env
from vidsearch.ops.stack.services.redis import RedisService

pytestmark = pytest.mark.unit

SECRET = 'p@ss w"rd\\with spaces\nand é'


def _tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    """state/ with a file, a sub-folder, a link to a file outside and a link to a folder outside."""
    state, outside = tmp_path / "state", tmp_path / "etc"
    (state / "svc" / "data").mkdir(parents=True)
    (state / "svc" / "data" / "segment").write_text("x")
    outside.mkdir()
    (outside / "shadow").write_text("secret")
    (outside / "inner").mkdir()
    (outside / "inner" / "file").write_text("y")
    (state / "svc" / "data" / "evil").symlink_to(outside / "shadow")
    (state / "svc" / "evil_dir").symlink_to(outside / "inner", target_is_directory=True)
    return state, state / "svc", outside


def test_chown_never_follows_a_planted_symlink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state, root, outside = _tree(tmp_path)
    calls: list[tuple[object, bool]] = []
    real_chown = os.chown

    def spy(path, uid, gid, *, dir_fd=None, follow_symlinks=True):
        calls.append((path, follow_symlinks))
        return real_chown(path, uid, gid, dir_fd=dir_fd, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(ownership.os, "chown", spy)
    # As root, hand the tree to another uid (and see that it moved); otherwise to ourselves.
    uid, gid = (54321, 54321) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    before = {p: p.stat() for p in (outside / "shadow", outside / "inner", outside / "inner" / "file")}
    touched = ownership.chown_tree("svc", root, uid, gid, [state])

    assert calls and all(follow is False for _, follow in calls), "every chown must be lchown-like"
    assert {p.relative_to(root).as_posix() for p in touched} == {".", "data", "data/segment", "data/evil", "evil_dir"}
    for path, st in before.items():  # nothing outside moved, nothing behind the links was entered
        assert (path.stat().st_uid, path.stat().st_gid) == (st.st_uid, st.st_gid)
    assert (root / "data" / "evil").lstat().st_uid == uid  # the link itself changed owner
    assert (root / "data" / "segment").stat().st_uid == uid


def test_chown_refuses_a_root_outside_the_stack_folders(tmp_path: Path) -> None:
    state, _root, outside = _tree(tmp_path)
    with pytest.raises(StackError, match="outside"):
        ownership.chown_tree("svc", outside, os.getuid(), os.getgid(), [state])
    link = state / "link_to_etc"
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(StackError, match="symlink"):  # inside by name, /etc in fact
        ownership.chown_tree("svc", link, os.getuid(), os.getgid(), [state])
    assert ownership.inside(state / "svc" / "data", [state]) and not ownership.inside(outside, [state])


def test_services_get_a_minimal_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDSEARCH_OPENSEARCH__PASSWORD", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "abc")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("JAVA_HOME", "/opt/jdk")
    env = service_env({"OPENSEARCH_PATH_CONF": "/x"})
    assert env["PATH"] == os.environ["PATH"] and env["LANG"] == "C.UTF-8" and env["JAVA_HOME"] == "/opt/jdk"
    assert env["OPENSEARCH_PATH_CONF"] == "/x"
    assert not any(k.startswith(("VIDSEARCH_", "AWS_")) for k in env)

    # and a started process really sees only that
    proc = ManagedProcess("envdump", tmp_path)
    script = "import os,json; print(json.dumps(dict(os.environ)), flush=True)"
    proc.start(Launch(argv=[sys.executable, "-c", script], cwd=tmp_path, env={"SERVICE_OWN": "1"}))
    deadline = time.monotonic() + 10
    while "SERVICE_OWN" not in proc.tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = proc.tail()
    assert '"SERVICE_OWN": "1"' in seen and "hunter2" not in seen and "AWS_SECRET" not in seen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_password_is_in_a_private_config_file_not_on_the_command_line(tmp_path: Path) -> None:
    port = _free_port()
    settings = Settings(redis=RedisSettings(url=f"redis://127.0.0.1:{port}/0", password=SecretStr(SECRET)),
                        stack=StackSettings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache"))
    svc = RedisService(settings)
    (svc.state).mkdir(parents=True)
    planted = tmp_path / "victim"
    planted.write_text("untouched")
    (svc.state / "redis.conf").symlink_to(planted)  # a planted link is replaced, not written through
    launch = svc.launch()
    conf = svc.state / "redis.conf"
    assert launch.argv[1:] == [str(conf)] and not any(SECRET in a or "requirepass" in a for a in launch.argv)
    assert not conf.is_symlink() and planted.read_text() == "untouched"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert "requirepass" in conf.read_text()

    # redis-server reads the password back verbatim (quoting) and `ps` never shows it
    proc = ManagedProcess("redis", svc.state)
    pid = proc.start(launch)
    try:
        deadline = time.monotonic() + 15
        while not svc.probe().healthy and time.monotonic() < deadline:
            assert not proc.exited(), proc.tail()
            time.sleep(0.1)
        assert svc.probe().healthy, proc.tail()
        import redis

        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="wrong", socket_timeout=3).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, socket_timeout=3).ping()
        assert SECRET not in " ".join(psutil.Process(pid).cmdline())
    finally:
        proc.stop(timeout_s=10)


def test_redis_config_without_a_password(tmp_path: Path) -> None:
    settings = Settings(stack=StackSettings(state_dir=tmp_path, cache_dir=tmp_path))
    text = RedisService(settings).config_text()
    assert "requirepass" not in text and 'appendonly "yes"' in text and 'save ""' in text
