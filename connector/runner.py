"""The indexing loop shared by every source: poll -> process -> dead letters -> commit.

Handling follows the error taxonomy (`vidsearch.core.errors`):
- infrastructure (a store, the DLQ producer, the feature store): the batch is rewound and the
  source paused; the loop probes the stores with backoff and resumes when all are healthy;
  nothing is committed past an unwritten event;
- deployment: the loop stops and the error propagates (the process exits, nothing committed);
- anything else that escapes the pipeline for a whole batch: each message is processed alone,
  and the one that fails is dead-lettered under its real class. A message can never stop the
  loop, so a restarted consumer never dies again on the same offset.

While a batch is processed or the stores are down the source keeps being polled (paused), so a
long encode or an outage never costs the consumer its group membership. A stop request
(SIGTERM) lets the current batch finish and commit before returning.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidsearch.connector.messages import Message
from vidsearch.connector.pipeline import BatchResult, Pipeline, dead_letter_for
from vidsearch.connector.sources.base import Source
from vidsearch.core.errors import DeploymentError, InfrastructureError

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    batches: int = 0
    events: int = 0
    indexed: int = 0
    deleted: int = 0
    dead: int = 0
    pauses: int = 0
    isolated_batches: int = 0  # batches that escaped the pipeline and were processed per message
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
        keepalive_after_s: float = 5.0,
    ) -> None:
        self.pipeline, self.source = pipeline, source
        self.batch_max, self.batch_max_s, self.backoff_s = batch_max, batch_max_s, backoff_s
        self.status_file, self.status_interval_s = status_file, status_interval_s
        self.on_batch = on_batch
        self.keepalive_after_s = keepalive_after_s
        self.stop = threading.Event()
        self.stats = RunStats()
        self._window: deque[tuple[float, int]] = deque(maxlen=64)
        self._last_status = 0.0
        self._first_batch: float | None = None

    def _await(self, future: Future[BatchResult]) -> BatchResult:
        """Wait for the batch; past `keepalive_after_s`, pause the source and keep polling it."""
        try:
            return future.result(timeout=self.keepalive_after_s)
        except TimeoutError:
            pass
        self.source.pause()
        try:
            while True:
                try:
                    return future.result(timeout=0.5)
                except TimeoutError:
                    self.source.keepalive(0.0)
        finally:
            self.source.resume()

    def _process(self, batch: list[Message]) -> BatchResult:
        """Process the batch in a thread of its own while this one keeps the source's group
        membership alive (a plain blocking call would starve the consumer's poll loop). A plain
        thread rather than an executor: an executor refuses work during interpreter shutdown
        with a RuntimeError that would be blamed on the events."""
        future: Future[BatchResult] = Future()

        def work() -> None:
            try:
                future.set_result(self.pipeline.process(batch))
            except BaseException as exc:  # handed to the caller, which applies the taxonomy
                future.set_exception(exc)

        threading.Thread(target=work, name="vidsearch-batch", daemon=True).start()
        return self._await(future)

    def _isolate(self, batch: list[Message], exc: Exception) -> BatchResult:
        """The pipeline failed for a whole batch with an error it did not attribute: process
        each message alone; the one that fails again is dead-lettered under its real class."""
        log.error("batch escaped the pipeline, isolating messages events=%s error_class=%s", len(batch), type(exc).__name__, exc_info=exc)
        self.stats.isolated_batches += 1
        total = BatchResult()
        for msg in batch:
            try:
                one = self._process([msg])
            except (InfrastructureError, DeploymentError):
                raise
            except Exception as one_exc:
                total.dead.append(dead_letter_for(msg, one_exc, "pipeline"))
                continue
            total.indexed += one.indexed
            total.deleted += one.deleted
            total.stale += one.stale
            total.dead += one.dead
            total.encode_s += one.encode_s
            total.sink_s += one.sink_s
        return total

    def _wait_for_stores(self, exc: InfrastructureError) -> None:
        self.stats.pauses += 1
        self.pipeline.metrics.paused.set(1)
        log.warning("service unavailable, source paused error_class=%s error=%s", type(exc).__name__, exc)
        delay = self.backoff_s
        while not self.stop.is_set():
            if all(self.pipeline.writer.healthy().values()):
                break
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not self.stop.is_set():
                self.source.keepalive(min(0.5, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 30.0)
        self.pipeline.metrics.paused.set(0)
        log.info("services healthy again, resuming")

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
            try:
                result = self._process(batch)
            except (InfrastructureError, DeploymentError):
                raise
            except Exception as exc:
                result = self._isolate(batch, exc)
            self.source.dead_letter(result.dead)
            self.source.commit(batch)
        except InfrastructureError as exc:
            self.source.rewind(batch)
            self.source.pause()
            try:
                self._wait_for_stores(exc)
            finally:
                self.source.resume()
            return True
        self._account(batch, result)
        return True

    def _account(self, batch: list[Message], result: BatchResult) -> None:
        s = self.stats
        s.batches += 1
        s.events += len(batch)
        s.indexed += result.indexed
        s.deleted += result.deleted
        s.dead += len(result.dead)
        s.encode_s += result.encode_s
        s.sink_s += result.sink_s
        self._window.append((time.monotonic(), s.events))
        s.active_s = time.monotonic() - (self._first_batch or time.monotonic())
        if self.on_batch:
            self.on_batch(s)

    def run(self, until_idle_s: float | None = None) -> RunStats:
        """Loop until stopped; a bounded source stops when exhausted, or after `until_idle_s`
        without messages when given (counted only while the source is ready: a consumer still
        waiting for its partitions after a rebalance is not idle)."""
        t0 = time.monotonic()
        idle_since = time.monotonic()
        try:
            while not self.stop.is_set():
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
