"""Structured `key=value` logging for every vidsearch process (CLI, consumers, workers), and a
quiet terminal by default.

Where log lines go:
* a log file (`<state_dir>/logs/vidsearch.log`, rotated) gets everything at the configured level,
  third-party libraries and Python warnings included: the place to look when something failed;
* stderr gets, by default, only vidsearch's own warnings and errors as one short line each (no
  traceback); with `-v` (or an explicit `--log-level`) it gets the full structured stream, like the
  file. stdout is never used, so `--json` output stays machine-readable.

Third-party noise is routed, not printed: pymilvus installs its own stderr handlers (and logs every
failed RPC with a traceback even when the caller handles the error), grpc's server logs
"Method not implemented" for pymilvus's AllocTimestamp probe, and torch / sentence-transformers /
onnxruntime raise FutureWarning/UserWarning at import. All of it goes to the log file unless `-v`.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import warnings
from pathlib import Path

FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"
# Client libraries that log every request at INFO, or their own tracebacks at ERROR.
THIRD_PARTY = ("opensearch", "opensearchpy", "urllib3", "kafka", "pymilvus", "httpx", "milvus_lite", "faiss", "grpc",
               "sentence_transformers", "transformers", "torch", "onnxruntime", "faster_whisper", "rapidocr",
               "RapidOCR", "py.warnings", "asyncio", "multipart", "PIL", "numba", "celery", "uvicorn")


class _Short(logging.Formatter):
    """`warning: message` on one line: what a person at a terminal needs, without the traceback
    (the log file keeps it)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}".splitlines()[0]


class _OwnOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("vidsearch")


def _tag(handler: logging.Handler) -> logging.Handler:
    handler._vidsearch = True  # type: ignore[attr-defined]
    return handler


def setup_logging(level: str = "INFO", log_file: Path | None = None, verbose: bool = False) -> Path | None:
    """Idempotent (a second call replaces the handlers of the first); returns the log file used."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_vidsearch", False)]:
        root.removeHandler(h)
        h.close()
    level_no = logging.getLevelName(level.upper())
    root.setLevel(level_no)

    stderr = _tag(logging.StreamHandler(sys.stderr))
    if verbose:
        stderr.setFormatter(logging.Formatter(FORMAT))
        stderr.setLevel(level_no)
    else:
        stderr.setFormatter(_Short())
        stderr.setLevel(logging.WARNING)
        stderr.addFilter(_OwnOnly())
    root.addHandler(stderr)

    used: Path | None = None
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            fh = _tag(logging.handlers.RotatingFileHandler(log_file, maxBytes=10 * 1024**2, backupCount=3, delay=True))
            fh.setFormatter(logging.Formatter(FORMAT))
            root.addHandler(fh)
            used = log_file
        except OSError:  # a read-only state dir must not stop a command; stderr still works
            used = None

    # Third-party loggers: drop their own handlers (pymilvus prints straight to stderr) and let
    # them reach ours; their INFO chatter stays out of our INFO lines.
    for name in THIRD_PARTY:
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.propagate = True
        lg.setLevel(max(logging.WARNING, root.level))
    # grpc logs every unimplemented method (pymilvus probes AllocTimestamp) with a traceback.
    logging.getLogger("grpc._server").setLevel(logging.DEBUG if verbose else logging.CRITICAL)
    quiet_third_party(verbose)
    return used


def quiet_third_party(verbose: bool = False) -> None:
    """Python warnings go to the log (logger `py.warnings`), not to the terminal; native libraries
    that print on their own are told to be quiet unless `verbose`."""
    logging.captureWarnings(True)
    if not verbose:
        warnings.filterwarnings("default")  # once per location, into the log file
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # its fork warning is printed, not logged
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
