"""Worker health: lets operators (and `vidsearch workers ping`) see which workers answer."""

from __future__ import annotations

import os
import socket
from importlib.metadata import version
from typing import Any

from vidsearch.ops.celery_app import app


@app.task(name="vidsearch.health.ping")
def ping(payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """Echo the payload with the identity of the worker that ran it; JSON in, JSON out."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "vidsearch": version("vidsearch"),
        "echo": payload or {},
    }
