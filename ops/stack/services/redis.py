"""Redis from Debian's `redis-server`: Celery's broker and result backend."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from vidsearch.core.settings import Settings
from vidsearch.ops.stack.errors import StackError
from vidsearch.ops.stack.ports import is_listening, port_of_url
from vidsearch.ops.stack.process import Launch
from vidsearch.ops.stack.services.base import Health

CONFIG_NAME = "redis.conf"


def _quote(value: str) -> str:
    """A redis.conf argument: double-quoted, with the escapes redis's own parser (sdssplitargs)
    understands, so a password with spaces, quotes or newlines is read back verbatim."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable() and ch.isascii():
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return '"' + "".join(out) + '"'


def write_private(path: Path, text: str) -> None:
    """Write `text` readable by the owner only (0600 from creation, never briefly wider), by
    replacing the file atomically: an existing file or a planted link is replaced, not followed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


class RedisService:
    name = kind = "redis"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = port_of_url(settings.redis.url, self.name)
        self.state = settings.stack.state_dir / "redis"

    def ports(self) -> dict[str, int]:
        return {"redis": self.port}

    def _binary(self) -> str:
        binary = shutil.which(self.settings.stack.redis_server)
        if binary is None:
            raise StackError(self.name, f"{self.settings.stack.redis_server!r} not found; install Debian's redis-server package")
        return binary

    def install(self) -> None:
        self._binary()

    def config_text(self) -> str:
        """redis.conf for the local broker. The password goes here (`requirepass`), never on the
        command line, where `ps` would show it to every user of the machine."""
        directives: list[tuple[str, str]] = [
            ("bind", "127.0.0.1"),
            ("port", str(self.port)),
            ("dir", str(self.state / "data")),
            ("daemonize", "no"),
            ("protected-mode", "yes"),
            # The broker holds queued tasks: keep them across a restart (AOF, fsync every second).
            ("appendonly", "yes"),
            ("save", ""),
            ("logfile", ""),
        ]
        if self.settings.redis.password is not None:
            directives.append(("requirepass", self.settings.redis.password.get_secret_value()))
        return "".join(f"{name} {_quote(value)}\n" for name, value in directives)

    def launch(self) -> Launch:
        (self.state / "data").mkdir(parents=True, exist_ok=True)
        conf = self.state / CONFIG_NAME
        write_private(conf, self.config_text())
        return Launch(argv=[self._binary(), str(conf)], cwd=self.state)

    def probe(self) -> Health:
        if not is_listening(self.port):
            return Health(False, error=f"nothing listens on 127.0.0.1:{self.port}")
        try:
            import redis

            password = self.settings.redis.password
            client = redis.Redis.from_url(
                self.settings.redis.url,
                password=password.get_secret_value() if password else None,
                socket_timeout=3,
            )
            client.ping()
            info = client.info("server")
        except Exception as exc:  # any client failure means "not healthy yet"
            return Health(False, error=f"PING failed: {exc}")
        return Health(True, info.get("redis_version"), {"port": self.port})
