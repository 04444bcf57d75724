"""Milvus for the local stack: milvus-lite in server mode, or embedded (a file) by URI alone."""

from __future__ import annotations

import shutil
import sys
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

from vidsearch.core.settings import Settings
from vidsearch.ops.stack.errors import StackError
from vidsearch.ops.stack.ports import is_listening, port_of_url
from vidsearch.ops.stack.process import Launch
from vidsearch.ops.stack.services.base import Health
from vidsearch.plugins.milvus.client import is_embedded, make_client


class MilvusService:
    name = kind = "milvus"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded = is_embedded(settings.milvus.uri)
        self.port = None if self.embedded else port_of_url(settings.milvus.uri, self.name)
        self.state = settings.stack.state_dir / "milvus"

    def ports(self) -> dict[str, int]:
        return {} if self.port is None else {"grpc": self.port}

    def _binary(self) -> str:
        beside = Path(sys.executable).parent / "milvus-lite"
        binary = str(beside) if beside.exists() else shutil.which("milvus-lite")
        if binary is None:
            raise StackError(self.name, "the milvus-lite command is missing; pip install milvus-lite")
        return binary

    def install(self) -> None:
        if not self.embedded:
            self._binary()

    def launch(self) -> Launch | None:
        if self.embedded:
            return None
        data = self.state / "data"
        data.mkdir(parents=True, exist_ok=True)
        argv = [self._binary(), "server", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(self.port)]
        return Launch(argv=argv, cwd=self.state)

    def probe(self) -> Health:
        lite = pkg_version("milvus-lite")
        if self.port is not None and not is_listening(self.port):
            return Health(False, error=f"nothing listens on 127.0.0.1:{self.port}")
        try:
            client = make_client(self.settings.milvus, timeout=5)
            client.list_collections()
            server = client.get_server_version() if not self.embedded else None
            client.close()
        except Exception as exc:  # any client failure means "not healthy yet"
            return Health(False, error=f"request failed: {exc}")
        detail: dict[str, Any] = {"mode": "embedded" if self.embedded else "server", "milvus_lite": lite, "uri": self.settings.milvus.uri}
        if self.port is not None:
            detail["port"] = self.port
        return Health(True, server or f"milvus-lite {lite}", detail)
