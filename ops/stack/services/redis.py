"""Redis from Debian's `redis-server`: Celery's broker and result backend."""

from __future__ import annotations

import shutil

from vidsearch.ops.errors import StackError
from vidsearch.ops.settings import Settings
from vidsearch.ops.stack.ports import is_listening, port_of_url
from vidsearch.ops.stack.process import Launch
from vidsearch.ops.stack.services.base import Health


class RedisService:
    name = "redis"

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

    def launch(self) -> Launch:
        data = self.state / "data"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            self._binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(data),
            "--daemonize", "no",
            "--protected-mode", "yes",
            # The broker holds queued tasks: keep them across a restart (AOF, fsync every second).
            "--appendonly", "yes",
            "--save", "",
            "--logfile", "",
        ]
        if self.settings.redis.password is not None:
            argv += ["--requirepass", self.settings.redis.password.get_secret_value()]
        return Launch(argv=argv, cwd=self.state)

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
