"""The indexing loop shared by every source: poll -> process -> dead letters -> commit.

When a store does not acknowledge, the batch is rewound and the source paused; the loop probes
the stores with backoff and resumes when all are healthy. Nothing is committed past an unwritten
event. A stop request (SIGTERM) lets the current batch finish and commit before returning.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidsearch.connector.errors import StoreUnavailableError
from vidsearch.connector.pipeline import Pipeline
from vidsearch.connector.sources.base import Source

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    batches: int = 0
    events: int = 0
    indexed: int = 0
    deleted: int = 0
    dead: int = 0
    pauses: int = 0
    encode_s: float = 0.0
    sink_s: float = 0.0
    wall_s: float = 0.0
    active_s: float = 0.0  # first batch polled -> last batch committed (no idle tail)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Runner:
    def __init__(
        self,
        pipeline: Pipeline,
        source: Source,
        batch_max: int,
        batch_max_s: float,
        backoff_s: float = 2.0,
        status_file: Path | None = None,
        status_interval_s: float = 2.0,
        on_batch: Callable[[RunStats], None] | None = None,
    ) -> None:
        self.pipeline, self.source = pipeline, source
        self.batch_max, self.batch_max_s, self.backoff_s = batch_max, batch_max_s, backoff_s
        self.status_file, self.status_interval_s = status_file, status_interval_s
        self.on_batch = on_batch
        self.stop = threading.Event()
        self.stats = RunStats()
        self._window: deque[tuple[float, int]] = deque(maxlen=64)
        self._last_status = 0.0
        self._first_batch: float | None = None

    def _wait_for_stores(self, exc: StoreUnavailableError) -> None:
        self.stats.pauses += 1
        self.pipeline.metrics.paused.set(1)
        log.warning("store unavailable, source paused store=%s error=%s", exc.store, exc)
        delay = self.backoff_s
        while not self.stop.is_set():
            # The consumer heartbeats from librdkafka's own thread; no poll is needed while paused.
            if all(s.healthy() for s in self.pipeline.sinks):
                break
            self.stop.wait(delay)
            delay = min(delay * 2, 30.0)
        self.pipeline.metrics.paused.set(0)
        log.info("stores healthy again, resuming")

    def run_once(self) -> bool:
        """One batch; False when there was nothing to do."""
        t_poll = time.monotonic()
        batch = self.source.poll(self.batch_max, self.batch_max_s)
        if not batch:
            return False
        if self._first_batch is None:
            self._first_batch = t_poll
        self.pipeline.metrics.events_in.inc(len(batch))
        try:
            result = self.pipeline.process(batch)
            self.source.dead_letter(result.dead)
        except StoreUnavailableError as exc:
            self.source.rewind(batch)
            self.source.pause()
            self._wait_for_stores(exc)
            self.source.resume()
            return True
        self.source.commit(batch)
        s = self.stats
        s.batches += 1
        s.events += len(batch)
        s.indexed += result.indexed
        s.deleted += result.deleted
        s.dead += len(result.dead)
        s.encode_s += result.encode_s
        s.sink_s += result.sink_s
        self._window.append((time.monotonic(), s.events))
        s.active_s = time.monotonic() - self._first_batch
        if self.on_batch:
            self.on_batch(s)
        return True

    def run(self, until_idle_s: float | None = None) -> RunStats:
        """Loop until stopped; a bounded source stops when exhausted, or after `until_idle_s`
        without messages when given (counted only while the source is ready: a consumer still
        waiting for its partitions after a rebalance is not idle)."""
        t0 = time.monotonic()
        idle_since = time.monotonic()
        try:
            while not self.stop.is_set():  # an unexpected error propagates: crash, restart, replay
                if self.run_once() or not self.source.ready():
                    idle_since = time.monotonic()
                elif self.source.exhausted() or (until_idle_s is not None and time.monotonic() - idle_since > until_idle_s):
                    break
                self._write_status()
        finally:
            self.stats.wall_s = time.monotonic() - t0
            self._write_status(force=True)
        return self.stats

    def throughput(self) -> float:
        if len(self._window) < 2:
            return 0.0
        (t_a, n_a), (t_b, n_b) = self._window[0], self._window[-1]
        return (n_b - n_a) / (t_b - t_a) if t_b > t_a else 0.0

    def _write_status(self, force: bool = False) -> None:
        if self.status_file is None or (not force and time.monotonic() - self._last_status < self.status_interval_s):
            return
        self._last_status = time.monotonic()
        data = {"time": time.time(), "events_per_s": round(self.throughput(), 2), "stats": self.stats.as_dict(), "source": self.source.status()}
        tmp = self.status_file.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(data))
            tmp.replace(self.status_file)
        except OSError as exc:  # status is advisory; never let it stop indexing
            log.warning("could not write status file path=%s error=%s", self.status_file, exc)
