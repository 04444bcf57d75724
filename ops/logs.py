"""Structured `key=value` logging for every vidsearch process (CLI, consumers, workers)."""

from __future__ import annotations

import logging
import sys

FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"


def setup_logging(level: str = "INFO") -> None:
    """Idempotent; logs go to stderr so `--json` output on stdout stays machine-readable."""
    root = logging.getLogger()
    if not any(getattr(h, "_vidsearch", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._vidsearch = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # Client libraries log every request at INFO; keep our own INFO lines readable.
    for noisy in ("opensearch", "urllib3", "kafka", "pymilvus", "httpx", "milvus_lite", "faiss"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
