"""The staged runner: decode, embed and write of different batches overlap, while commits stay
strictly in order, only after the write of the batch they acknowledge, and never past a batch
that could not be written. Pure logic: in-memory source and sinks, stages slowed by sleeps so
that overlap is observable (the assertions are about order and overlap, never about speed)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.unit.test_pipeline_attribution import FakeText, ListSource, MemorySink, msg
from vidsearch.connector.encoding import EventEncoder
from vidsearch.connector.pipeline import Pipeline
from vidsearch.connector.runner import Runner
from vidsearch.connector.stages import BatchCancelled, StageChain
from vidsearch.connector.writer import DocumentWriter
from vidsearch.core.errors import DeploymentError, StoreUnavailableError
from vidsearch.core.settings import Settings
from vidsearch.encoders.fusion.embedder import DefaultEmbedder
from vidsearch.ops.bench import events as ev

pytestmark = pytest.mark.unit
STEP_S = 0.15


class Log:
    """What happened, in order: (what, batch first offset, start, end)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: list[tuple[str, int, float, float]] = []
        self.commits: list[tuple[int, float]] = []

    def span(self, what: str, first: int, t0: float) -> None:
        with self.lock:
            self.spans.append((what, first, t0, time.monotonic()))

    def of(self, what: str) -> dict[int, tuple[float, float]]:
        return {first: (a, b) for w, first, a, b in self.spans if w == what}


class SlowPipeline(Pipeline):
    """Every stage sleeps, so each batch spends a visible time in each."""

    log: Log

    def _slow(self, what: str, first: int, step: Any, value: Any) -> Any:
        t0 = time.monotonic()
        time.sleep(STEP_S)
        out = step(value)
        self.log.span(what, first, t0)
        return out

    def decode(self, messages: Any) -> Any:
        return self._slow("decode", messages[0].offset, super().decode, messages)

    def embed(self, work: Any) -> Any:
        return self._slow("embed", work.messages[0].offset, super().embed, work)

    def write(self, work: Any) -> Any:
        return self._slow("write", work.messages[0].offset, super().write, work)


class LoggingSource(ListSource):
    def __init__(self, messages: list, log: Log) -> None:
        super().__init__(messages)
        self.log = log
        self.commit_calls: list[int] = []
        self.uncommitted_max = 0

    def poll(self, max_events: int, timeout_s: float) -> list:
        out = super().poll(max_events, timeout_s)
        self.uncommitted_max = max(self.uncommitted_max, self.position - self.committed)
        return out

    def commit(self, batch: list) -> None:
        super().commit(batch)
        self.commit_calls.append(batch[0].offset)
        self.log.commits.append((batch[0].offset, time.monotonic()))


def _setup(sinks: list[MemorySink], n: int, batch: int = 2) -> tuple[SlowPipeline, LoggingSource, Log]:
    s = Settings().model_copy(update={"indexer": Settings().indexer.model_copy(update={"model_version": "m1"})})
    writer = DocumentWriter(sinks, lambda: ["m1"], lambda: [("m1", DefaultEmbedder())])  # type: ignore[arg-type]
    p = SlowPipeline(s, EventEncoder(s, FakeText()), writer, None)
    log = Log()
    p.log = log
    source = LoggingSource([msg(i, ev.upsert(f"v{i}", 1, seed=i)) for i in range(n)], log)
    return p, source, log


def test_stages_of_different_batches_overlap_and_commits_stay_in_order() -> None:
    a = MemorySink("a")
    p, source, log = _setup([a], n=12)
    stats = Runner(p, source, batch_max=2, batch_max_s=0.01, depth=4).run()
    assert stats.indexed == 12 and set(a.docs) == {f"v{i}" for i in range(12)}
    assert source.commit_calls == [0, 2, 4, 6, 8, 10]  # in order, each batch once
    writes, decodes = log.of("write"), log.of("decode")
    for first, at in log.commits:  # a commit only after its batch was written
        assert at >= writes[first][1]
    # some batch was decoded while an earlier one was being written: the stages overlap
    assert any(d0 < w1 and w0 < d1 for wf, (w0, w1) in writes.items() for df, (d0, d1) in decodes.items() if df > wf)
    # never more than `depth` batches between poll and commit
    assert source.uncommitted_max <= 4 * 2


def test_depth_one_runs_the_stages_one_batch_at_a_time() -> None:
    p, source, log = _setup([MemorySink("a")], n=6)
    Runner(p, source, batch_max=2, batch_max_s=0.01, depth=1).run()
    spans = sorted(log.spans, key=lambda s: s[2])
    for (_, _, _, end), (_, _, start, _) in zip(spans, spans[1:]):
        assert start >= end  # no two stages ever run at once
    assert source.commit_calls == [0, 2, 4]


def test_a_store_outage_commits_nothing_past_the_failed_batch_and_replays_everything_behind_it() -> None:
    a = MemorySink("a")
    p, source, log = _setup([a], n=10)
    real_write = a.write
    state = {"failed": False}

    def write(version: str, ops: list) -> Any:
        if not state["failed"] and any(op.video_id == "v4" for op in ops):  # the third batch, once
            state["failed"] = True
            a.down = True
            raise StoreUnavailableError("a", "connection refused")
        return real_write(version, ops)

    a.write = write  # type: ignore[method-assign]
    probes = {"n": 0}

    def healthy() -> bool:  # back after a couple of probes
        probes["n"] += 1
        if probes["n"] >= 2:
            a.down = False
        return not a.down

    a.healthy = healthy  # type: ignore[method-assign]
    runner = Runner(p, source, batch_max=2, batch_max_s=0.01, backoff_s=0.02, depth=3)
    stats = runner.run()
    assert stats.pauses == 1
    # batches behind the failed one were rewound with it, then every batch committed once, in order
    assert source.commit_calls == [0, 2, 4, 6, 8]
    assert set(a.docs) == {f"v{i}" for i in range(10)} and source.committed == 10


def test_repeated_outages_the_probe_cannot_see_back_off_instead_of_spinning() -> None:
    """The dead-letter producer, Kafka commits, the feature store or the registry can fail while
    every store answers its probe: each further outage before a commit waits longer."""
    a = MemorySink("a")
    p, source, log = _setup([a], n=4)
    real_write = a.write
    attempts: list[float] = []

    def write(version: str, ops: list) -> Any:
        if any(op.video_id == "v0" for op in ops):
            attempts.append(time.monotonic())
            if len(attempts) <= 3:  # three outages in a row on the first batch, then it works
                raise StoreUnavailableError("registry", "connection refused")
        return real_write(version, ops)

    a.write = write  # type: ignore[method-assign]
    keepalive_s: list[float] = []
    real_keepalive = source.keepalive

    def keepalive(timeout_s: float) -> None:
        keepalive_s.append(timeout_s)
        time.sleep(timeout_s)
        real_keepalive(timeout_s)

    source.keepalive = keepalive  # type: ignore[method-assign]
    stats = Runner(p, source, batch_max=2, batch_max_s=0.01, backoff_s=0.05, depth=1).run()
    assert stats.pauses == 3 and len(attempts) == 4
    assert set(a.docs) == {"v0", "v1", "v2", "v3"} and source.commit_calls == [0, 2]
    # first outage: the probe passes at once, nothing waited; then 0.05 s, then 0.1 s, kept alive
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert gaps[1] >= 0.05 and gaps[2] >= 0.1
    assert sum(keepalive_s) == pytest.approx(0.15, abs=0.02), keepalive_s


@pytest.mark.parametrize("broken", [False, True])
def test_the_lag_gauge_follows_the_source_and_a_failing_lag_never_stops_indexing(broken: bool) -> None:
    p, source, _ = _setup([MemorySink("a")], n=6)
    calls: list[int] = []

    def lag() -> dict[str, int]:
        calls.append(source.committed)
        if broken:
            raise ConnectionError("brokers unreachable")
        return {"0": 6 - source.committed}

    source.lag = lag  # type: ignore[attr-defined]
    stats = Runner(p, source, batch_max=2, batch_max_s=0.01, depth=2, status_interval_s=0.0).run()
    assert stats.indexed == 6 and source.committed == 6 and calls
    value = p.metrics.registry.get_sample_value("vidsearch_consumer_lag", {"partition": "0"})
    assert value == (None if broken else 0.0)  # the last reading, after the drain


def test_a_deployment_error_in_a_later_stage_stops_without_committing_it() -> None:
    class Broken(SlowPipeline):
        def embed(self, work: Any) -> Any:
            if work.messages[0].offset >= 4:
                raise DeploymentError("model package missing")
            return super().embed(work)

    a = MemorySink("a")
    s = Settings()
    writer = DocumentWriter([a], lambda: ["m1"], lambda: [("m1", DefaultEmbedder())])  # type: ignore[list-item]
    p = Broken(s, EventEncoder(s, FakeText()), writer, None)
    p.log = Log()
    source = LoggingSource([msg(i, ev.upsert(f"v{i}", 1, seed=i)) for i in range(10)], p.log)
    with pytest.raises(DeploymentError):
        Runner(p, source, batch_max=2, batch_max_s=0.01, depth=3).run()
    assert source.committed <= 4 and all(first < 4 for first in source.commit_calls)


def test_a_cancelled_batch_skips_the_stages_it_has_not_reached() -> None:
    seen: list[str] = []
    gate = threading.Event()

    def first(x: int) -> int:
        gate.wait(2)
        seen.append(f"first{x}")
        return x

    def second(x: int) -> int:
        seen.append(f"second{x}")
        return x

    chain = StageChain([("first", first), ("second", second)])
    a, b = chain.submit(1), chain.submit(2)
    b.cancel.set()
    gate.set()
    assert a.future.result(2) == 1
    with pytest.raises(BatchCancelled):
        b.future.result(2)
    chain.close()
    assert seen == ["first1", "second1"]
