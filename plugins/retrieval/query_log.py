"""The query log: query-tower vectors of served queries, the bank NCL biases are computed from.

An append-only file of float32 rows (dimension in a 4-byte header). Hand-rolled because it is a
few lines and needs no service: appends from one process are atomic enough (one write call per
row), and readers take whole rows only. The re-embedding/beat tasks read the newest N rows.

Logging is opt-in (`retrieval.log_queries`): whoever can send queries can shape the bank, and so
the NCL biases of every video. Only an operator who trusts the query source should turn it on.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from vidsearch.core.settings import Settings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

HEADER = struct.Struct("<I")
R = TypeVar("R", bound="DataclassInstance")  # dataclasses.replace() copies it


def log_path(settings: Settings) -> Path:
    return settings.retrieval.query_log or settings.stack.state_dir / "query_log.f32"


def recorder(settings: Settings) -> Callable[[np.ndarray], None] | None:
    """The hook a retriever should call per served query: None unless logging is opted into."""
    return QueryLog(log_path(settings)).append if settings.retrieval.log_queries else None


def apply_opt_in(retriever: R, settings: Settings) -> R:
    """`retriever` without its query-log hook unless `retrieval.log_queries` is on. The API and
    the CLI call this on whatever retriever they are given, so the opt-in holds however it was
    built (a copy: the caller's object is left as it was)."""
    hook: Any = getattr(retriever, "on_query", None)
    if settings.retrieval.log_queries or hook is None:
        return retriever
    return dataclasses.replace(retriever, on_query=None)


class QueryLog:
    def __init__(self, path: Path, dim: int = 384) -> None:
        self.path, self.dim = Path(path), dim
        self._lock = threading.Lock()

    def append(self, vector: np.ndarray) -> None:
        row = np.asarray(vector, dtype=np.float32).reshape(-1)
        if row.shape[0] != self.dim or not np.all(np.isfinite(row)):
            return  # never poison the bank with a malformed vector
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists() or self.path.stat().st_size == 0
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (HEADER.pack(self.dim) if new else b"") + row.tobytes())
            finally:
                os.close(fd)

    def tail(self, n: int) -> np.ndarray:
        if not self.path.exists() or self.path.stat().st_size < HEADER.size:
            return np.zeros((0, self.dim), np.float32)
        data = self.path.read_bytes()
        (dim,) = HEADER.unpack_from(data)
        rows = (len(data) - HEADER.size) // (4 * dim)
        arr = np.frombuffer(data, np.float32, count=rows * dim, offset=HEADER.size).reshape(rows, dim)
        return arr[-n:].copy()
