"""The indexing loop shared by every source: poll -> stages (decode, embed, build, write) ->
dead letters -> commit.

Up to `indexer.pipeline_depth` batches are in flight at once, each in a different stage
(`vidsearch.connector.stages`): while batch N is written, N+1 is built, N+2 embedded and N+3
decoded. Batches
finish in order and are committed in order, each only after every store acknowledged it and its
dead letters were delivered. With every slot taken the runner waits for the oldest batch, and
past `keepalive_after_s` pauses the source and keeps polling it: back-pressure never buffers
more than the slots, and never costs the consumer its group membership.

Handling follows the error taxonomy (`vidsearch.core.errors`):
- infrastructure (a store, the DLQ producer, the feature store): that batch and every batch
  behind it are cancelled and rewound, and the source paused; the loop probes the stores with
  backoff and resumes when all are healthy; nothing is committed past an unwritten event;
- deployment: the loop stops and the error propagates (the process exits, nothing committed);
- anything else that escapes the pipeline for a whole batch: each message is processed alone,
  and the one that fails is dead-lettered under its real class. A message can never stop the
  loop, so a restarted consumer never dies again on the same offset.

While a batch is processed or the stores are down the source keeps being polled (paused), so a
long encode or an outage never costs the consumer its group membership. A stop request
(SIGTERM) lets the batches in flight finish and commit before returning.
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
from vidsearch.connector.stages import InFlight, StageChain
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
    decode_s: float = 0.0
    embed_s: float = 0.0
    build_s: float = 0.0
    sink_s: float = 0.0
    wall_s: float = 0.0
    active_s: float = 0.0  # first batch polled -> last batch committed (no idle tail)

    @property
    def encode_s(self) -> float:
        return self.decode_s + self.embed_s + self.build_s

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "encode_s": self.encode_s}


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
        depth: int = 4,
    ) -> None:
        self.pipeline, self.source = pipeline, source
        self.batch_max, self.batch_max_s, self.backoff_s = batch_max, batch_max_s, backoff_s
        self.status_file, self.status_interval_s = status_file, status_interval_s
        self.on_batch = on_batch
        self.keepalive_after_s = keepalive_after_s
        self.depth = max(1, depth)
        self._chain: StageChain | None = None  # started with the first batch
        self._inflight: deque[InFlight] = deque()
        self.stop = threading.Event()
        self.stats = RunStats()
        self._window: deque[tuple[float, int]] = deque(maxlen=64)
        self._last_status = 0.0
        self._first_batch: float | None = None
        self._outages = 0  # infrastructure errors since the last commit
        self._last_lag = 0.0

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
        """Every stage of one batch in a thread of its own (isolation) while this one keeps the
        source's group membership alive (a plain blocking call would starve the consumer's poll
        loop). A plain thread rather than an executor: an executor refuses work during
        interpreter shutdown with a RuntimeError that would be blamed on the events."""
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
            total.decode_s += one.decode_s
            total.embed_s += one.embed_s
            total.build_s += one.build_s
            total.sink_s += one.sink_s
        return total

    def _wait_for_stores(self, exc: InfrastructureError) -> None:
        self.stats.pauses += 1
        self.pipeline.metrics.paused.set(1)
        log.warning("service unavailable, source paused error_class=%s error=%s", type(exc).__name__, exc)
        self._outages += 1
        if self._outages > 1:
            # The probe asks the video stores only; what else can fail (the dead-letter producer,
            # Kafka commits, the feature store, the model registry) looks healthy at once. Repeated
            # outages with no commit in between therefore wait 2, 4, ... 30 s before the probe
            # rather than spinning on the same batch.
            self._keepalive_for(min(self.backoff_s * 2 ** (self._outages - 2), 30.0))
        delay = self.backoff_s
        while not self.stop.is_set():
            if all(self.pipeline.writer.healthy().values()):
                break
            self._keepalive_for(delay)
            delay = min(delay * 2, 30.0)
        self.pipeline.metrics.paused.set(0)
        log.info("services healthy again, resuming")

    def _keepalive_for(self, seconds: float) -> None:
        """Wait, polling the paused source so the consumer keeps its group membership."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stop.is_set():
            self.source.keepalive(min(0.5, max(0.0, deadline - time.monotonic())))

    def _submit(self, batch: list[Message]) -> None:
        if self._chain is None:
            self._chain = StageChain(self.pipeline.stages(), name=f"vidsearch-{self.source.name}")
        self._inflight.append(self._chain.submit(batch))
        self.pipeline.metrics.in_flight.set(len(self._inflight))

    def _retire_head(self) -> None:
        """Wait for the oldest batch (keeping the source alive), deliver its dead letters and
        commit it. Raises InfrastructureError and DeploymentError with the batch still in flight."""
        flight = self._inflight[0]
        batch: list[Message] = flight.value
        try:
            result = self._await(flight.future)
        except (InfrastructureError, DeploymentError):
            raise
        except Exception as exc:
            result = self._isolate(batch, exc)
        self.source.dead_letter(result.dead)
        self.source.commit(batch)
        self._outages = 0
        self._inflight.popleft()
        self.pipeline.metrics.in_flight.set(len(self._inflight))
        self._account(batch, result)

    def _retire_done(self) -> None:
        while self._inflight and self._inflight[0].future.done():
            self._retire_head()

    def _abandon(self) -> list[Message]:
        """Cancel every batch in flight and wait until no stage holds one; returns their messages,
        oldest first (none of them may be committed: the oldest could not be)."""
        for flight in self._inflight:
            flight.cancel.set()
        messages: list[Message] = []
        for flight in self._inflight:
            try:
                self._await(flight.future)
            except Exception:  # noqa: S110 - the outcome of a cancelled batch is irrelevant: it is replayed
                pass
            messages += flight.value
        self._inflight.clear()
        self.pipeline.metrics.in_flight.set(0)
        return messages

    def _recover(self, exc: InfrastructureError) -> None:
        """A service is down: rewind everything in flight, pause, wait for the stores."""
        self.source.rewind(self._abandon())
        self.source.pause()
        try:
            self._wait_for_stores(exc)
        finally:
            self.source.resume()

    def run_once(self) -> bool:
        """One step: commit the batches that finished (in order), then take in a new batch if a
        slot is free, or wait for the oldest when every slot is taken or the source has nothing
        new while batches are in flight. False when there was nothing to do."""
        try:
            self._retire_done()
            if len(self._inflight) >= self.depth:
                self._retire_head()
                return True
            t_poll = time.monotonic()
            batch = self.source.poll(self.batch_max, self.batch_max_s)
            if batch:
                if self._first_batch is None:
                    self._first_batch = t_poll
                self.pipeline.metrics.events_in.inc(len(batch))
                self._submit(batch)
                return True
            if self._inflight:
                self._retire_head()
                return True
            return False
        except InfrastructureError as exc:
            self._recover(exc)
            return True
        except DeploymentError:
            self._abandon()
            raise

    def drain(self) -> None:
        """Finish and commit every batch in flight (a stop request); a service that is down
        leaves them uncommitted, rewound for whoever consumes next."""
        while self._inflight:
            try:
                self._retire_head()
            except InfrastructureError as exc:
                log.warning("service unavailable while stopping, batches left uncommitted error_class=%s", type(exc).__name__)
                self.source.rewind(self._abandon())
            except DeploymentError:
                self._abandon()
                raise

    def close(self) -> None:
        """Stop the stage threads (after `drain` or `_abandon`)."""
        if self._chain is not None:
            self._chain.close()
            self._chain = None

    def _account(self, batch: list[Message], result: BatchResult) -> None:
        s = self.stats
        s.batches += 1
        s.events += len(batch)
        s.indexed += result.indexed
        s.deleted += result.deleted
        s.dead += len(result.dead)
        s.decode_s += result.decode_s
        s.embed_s += result.embed_s
        s.build_s += result.build_s
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
                self._observe_lag()
            self.drain()
            self._observe_lag(force=True)
        finally:
            self.close()
            self.stats.wall_s = time.monotonic() - t0
            self._write_status(force=True)
        return self.stats

    def throughput(self) -> float:
        if len(self._window) < 2:
            return 0.0
        (t_a, n_a), (t_b, n_b) = self._window[0], self._window[-1]
        return (n_b - n_a) / (t_b - t_a) if t_b > t_a else 0.0

    def _observe_lag(self, force: bool = False) -> None:
        """`vidsearch_consumer_lag` per partition, every `status_interval_s` (it asks the brokers)."""
        if not force and time.monotonic() - self._last_lag < self.status_interval_s:
            return
        self._last_lag = time.monotonic()
        lag = getattr(self.source, "lag", None)
        if lag is None:
            return
        try:
            for partition, behind in lag().items():
                self.pipeline.metrics.lag.labels(partition=partition).set(behind)
        except Exception as exc:  # noqa: BLE001 - a gauge must never stop indexing; brokers may be down
            log.debug("consumer lag not available error_class=%s error=%s", type(exc).__name__, exc)

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
