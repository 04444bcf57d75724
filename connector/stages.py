"""Bounded, ordered stages: each stage of the indexing pipeline (decode, embed, build, write) runs
on a thread of its own, so batch N is written while batch N+1 is built, N+2 embedded and N+3
decoded. (Each stage's busy time is measured by the pipeline itself, which owns the stages.)

- **Order**: every stage is one thread fed by a FIFO queue, so batches leave each stage, and
  finish, in the order they were submitted; the runner commits them in that order.
- **Bound**: the runner submits at most `indexer.pipeline_depth` batches before it waits for the
  oldest, so memory holds at most that many batches whatever the stages' speeds.
- **Failure**: a stage that raises finishes its batch's future with the exception, and later
  stages skip that batch. A batch whose `cancel` was set is skipped by every stage it has not
  reached yet (the runner cancels every batch behind one that could not be written, since none
  of them may be committed before it).

Threads, not processes: what is slow in each stage runs outside the GIL (torch and onnxruntime
inference, numpy, waiting on the stores' sockets), and a process per stage would load every model
again and pickle every document between stages. Hand-rolled on `threading` and `queue` rather
than `concurrent.futures`: a pool has no notion of a chain of stages with one worker each, and it
refuses work during interpreter shutdown with a RuntimeError that would be blamed on the events.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Stage = tuple[str, Callable[[Any], Any]]


class BatchCancelled(Exception):
    """The batch was withdrawn before a stage reached it (a batch ahead of it failed)."""


@dataclass
class InFlight:
    """One submitted batch: its input, its cancel flag and the future of the last stage's output."""

    value: Any
    future: Future[Any] = field(default_factory=Future)
    cancel: threading.Event = field(default_factory=threading.Event)


class StageChain:
    """Single-worker stages run in order over submitted batches; see the module docstring."""

    def __init__(self, stages: Sequence[Stage], name: str = "vidsearch") -> None:
        if not stages:
            raise ValueError("a stage chain needs at least one stage")
        self.names = [n for n, _ in stages]
        self._queues: list[queue.Queue[tuple[InFlight, Any] | None]] = [queue.Queue() for _ in stages]
        self._threads = [threading.Thread(target=self._work, args=(i, fn), name=f"{name}-{n}", daemon=True)
                         for i, (n, fn) in enumerate(stages)]
        for t in self._threads:
            t.start()

    def submit(self, value: Any) -> InFlight:
        flight = InFlight(value)
        self._queues[0].put((flight, value))
        return flight

    def _work(self, index: int, fn: Callable[[Any], Any]) -> None:
        inbox, name = self._queues[index], self.names[index]
        last = index == len(self._queues) - 1
        while True:
            item = inbox.get()
            if item is None:
                return
            flight, value = item
            if flight.cancel.is_set():
                flight.future.set_exception(BatchCancelled(f"cancelled before {name}"))
                continue
            try:
                out = fn(value)
            except BaseException as exc:  # handed to the runner, which applies the error taxonomy
                flight.future.set_exception(exc)
                continue
            if last:
                flight.future.set_result(out)
            else:
                self._queues[index + 1].put((flight, out))

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the workers once the batches already submitted have passed (callers wait for or
        cancel those first)."""
        for q in self._queues:
            q.put(None)
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.warning("pipeline stage still busy at shutdown stage=%s", t.name)
