"""The shared indexing pipeline: messages -> validated events -> features -> documents -> every
store, in four stages (decode, embed, build, write) that the runner overlaps across batches.
Sources (Kafka, files) and stores (one backend per engine) are adapters around it; the documents
are built and written by the `DocumentWriter`, which bulk loads and re-embedding use too.

Invariants:
- Every exception met while one event is handled is attributed to that event and handled by
  the rule of its class (`vidsearch.core.errors.classify`): a data error, or any exception of a
  class not known to be infrastructure or deployment, dead-letters the event under its real
  class name; an `InfrastructureError` leaves the whole batch unacknowledged (the runner rewinds
  and pauses); a `DeploymentError` propagates (the process must stop: nothing is committed).
- A batch-level step (metadata text encoding, embedding, a sink write) that fails for a reason
  that is not infrastructure is retried one event at a time, so one event cannot take its
  neighbours down.
- A document that one store refuses for good is dead-lettered (the writer's policy: what other
  stores already hold is left alone, the divergence is logged and counted).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vidsearch.connector.copy_check import CopyCheck
from vidsearch.connector.encoding import EventEncoder
from vidsearch.connector.errors import FeatureStoreUnavailableError, InvalidEventError
from vidsearch.connector.events import VideoDelete, VideoUpsert, parse_event
from vidsearch.connector.feature_store import FileFeatureStore
from vidsearch.connector.messages import DeadLetter, Message
from vidsearch.connector.metrics import Metrics
from vidsearch.connector.writer import DocumentWriter
from vidsearch.core.documents import IndexDoc, Operation, Tombstone, latest_per_video
from vidsearch.core.errors import Handling, classify
from vidsearch.core.settings import Settings
from vidsearch.encoders.features import VideoFeatures
from vidsearch.plugins.copies.search import CopyMatch
from vidsearch.plugins.retrieval.ncl_source import NclSource

log = logging.getLogger(__name__)
T = TypeVar("T")
Upsert = tuple[int, VideoUpsert, VideoFeatures]  # (index in the batch, event, base features)


@dataclass
class BatchResult:
    indexed: int = 0
    deleted: int = 0
    stale: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    decode_s: float = 0.0
    embed_s: float = 0.0
    build_s: float = 0.0
    sink_s: float = 0.0

    @property
    def encode_s(self) -> float:
        return self.decode_s + self.embed_s + self.build_s


@dataclass
class Work:
    """One batch between stages: its messages, what is decoded or built so far, its dead letters."""

    messages: list[Message]
    result: BatchResult = field(default_factory=BatchResult)
    ops: list[tuple[int, Operation]] = field(default_factory=list)  # (index in the batch, operation)
    upserts: list[Upsert] = field(default_factory=list)
    copies: dict[str, list[CopyMatch]] = field(default_factory=dict)


def dead_letter_for(msg: Message, exc: BaseException, default_stage: str) -> DeadLetter:
    """The dead letter of `msg` for `exc`, or re-raise `exc` when its class is not the event's
    fault (infrastructure: pause and retry; deployment: stop)."""
    if classify(exc) is not Handling.DEAD_LETTER:
        raise exc
    stage = getattr(exc, "stage", None) or default_stage
    reason = str(exc) or type(exc).__name__
    if not isinstance(exc, InvalidEventError):  # not raised on purpose: keep the trace for whoever debugs it
        log.warning("event failed with an unexpected error, dead-lettered topic=%s partition=%s offset=%s stage=%s error_class=%s",
                    msg.topic, msg.partition, msg.offset, stage, type(exc).__name__, exc_info=exc)
    return DeadLetter(msg, type(exc).__name__, reason, stage)


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        encoder: EventEncoder,
        writer: DocumentWriter,
        features: FileFeatureStore | None,
        metrics: Metrics | None = None,
        copy_check: CopyCheck | None = None,
    ) -> None:
        self.settings, self.encoder, self.writer, self.features = settings, encoder, writer, features
        self.copy_check = copy_check
        self.metrics = metrics or writer.metrics
        self.writer.metrics = self.metrics
        self.ncl = NclSource(settings)

    def ensure_stores(self) -> None:
        self.writer.ensure()

    def close(self) -> None:
        """Store clients and the copy-event producer (a live producer keeps its topics alive)."""
        try:
            if self.copy_check is not None:
                self.copy_check.close()
        finally:
            self.writer.close()

    def _parse(self, msg: Message) -> VideoUpsert | VideoDelete:
        event = parse_event(msg.value, self.settings.indexer.max_event_bytes, self.settings.indexer.limits)
        if msg.key is not None and msg.key.decode("utf-8", "replace") != event.video_id:
            raise InvalidEventError(f"message key {msg.key[:80]!r} does not match video_id {event.video_id!r}", stage="validate")
        return event

    def _per_event(self, items: list[Upsert], messages: list[Message], dead: list[DeadLetter], stage: str,
                   step: Callable[[list[Upsert]], list[T]]) -> list[T]:
        """Run a batch-level step; if it fails for a reason that is not infrastructure, run it
        for each event alone and dead-letter the ones that still fail."""
        if not items:
            return []
        try:
            return step(items)
        except Exception as exc:
            if classify(exc) is not Handling.DEAD_LETTER:
                raise
            if len(items) == 1:
                dead.append(dead_letter_for(messages[items[0][0]], exc, stage))
                return []
            log.warning("batch step failed, retrying per event stage=%s events=%s error_class=%s", stage, len(items), type(exc).__name__)
        out: list[T] = []
        for item in items:
            try:
                out.extend(step([item]))
            except Exception as exc:
                dead.append(dead_letter_for(messages[item[0]], exc, stage))
        return out

    def _metadata(self, items: list[Upsert]) -> list[Upsert]:
        self.encoder.apply_metadata([(e, f) for _, e, f in items])
        return items

    def _documents(self, items: list[Upsert]) -> list[tuple[int, Operation]]:
        ncl = self.ncl()
        docs = self.writer.build([(event, f) for _, event, f in items], ncl.bias if ncl is not None else None)
        return [(i, doc) for (i, _, _), doc in zip(items, docs, strict=True)]

    def _keep_features(self, items: list[tuple[int, Operation]], events: dict[int, Upsert]) -> None:
        """Base features for re-embedding; a disk that refuses them is infrastructure (pause)."""
        if self.features is None:
            return
        for i, _ in items:
            _, event, feats = events[i]
            try:
                self.features.put(event.video_id, event.resolved_version, feats)
            except OSError as exc:
                raise FeatureStoreUnavailableError(f"cannot write features of {event.video_id}: {exc}") from exc

    def decode(self, messages: list[Message]) -> Work:
        """Parse and validate every message and get its base features (decoded from the event,
        or extracted from its media). The first stage: what it returns holds no store state."""
        t0 = time.perf_counter()
        work = Work(messages)
        for i, msg in enumerate(messages):
            try:
                event = self._parse(msg)
                if isinstance(event, VideoDelete):
                    work.ops.append((i, Tombstone(event.video_id, event.resolved_version)))
                else:
                    work.upserts.append((i, event, self.encoder.base_features(event)))
            except Exception as exc:
                work.result.dead.append(dead_letter_for(msg, exc, "encode"))
        work.result.decode_s = time.perf_counter() - t0
        self.metrics.stage_seconds.labels("decode").observe(work.result.decode_s)
        return work

    def embed(self, work: Work) -> Work:
        """Metadata text vectors for the whole batch: the text encoder, alone in its stage (it
        runs outside the GIL, so the stages beside it keep their core)."""
        t0 = time.perf_counter()
        work.upserts = self._per_event(work.upserts, work.messages, work.result.dead, "text_metadata", self._metadata)
        work.result.embed_s = time.perf_counter() - t0
        self.metrics.stage_seconds.labels("embed").observe(work.result.embed_s)
        return work

    def build(self, work: Work) -> Work:
        """Documents (every write version's vectors, frames), the base features kept for
        re-embedding, and the ingest-time copy check."""
        t0 = time.perf_counter()
        docs = self._per_event(work.upserts, work.messages, work.result.dead, "embed", self._documents)
        self._keep_features(docs, {u[0]: u for u in work.upserts})
        if self.copy_check is not None:  # the frame index down is infrastructure: raises, batch replayed
            work.copies = self.copy_check.tag([op for _, op in docs if isinstance(op, IndexDoc)])
        work.ops = latest_per_video(work.ops + docs)
        work.upserts = []  # the documents hold what the write needs; let the features go
        work.result.build_s = time.perf_counter() - t0
        self.metrics.stage_seconds.labels("build").observe(work.result.build_s)
        return work

    def encode(self, messages: list[Message]) -> Work:
        """Decode, embed and build one batch, one stage after the other; raises only
        infrastructure and deployment errors, everything else is a dead letter in the result."""
        return self.build(self.embed(self.decode(messages)))

    def _write_batch(self, ops: list[Operation], messages: dict[str, Message], result: BatchResult) -> list[Operation]:
        """Every store (the writer); returns the operations every store took. Documents a store
        refused are dead-lettered with the store and its reason."""
        outcome = self.writer.write(ops)
        result.stale = max(result.stale, outcome.stale)
        for vid, why in outcome.rejected.items():
            result.dead.append(DeadLetter(messages[vid], "StoreRejectedError", why.reason, why.stage))
        return outcome.written

    def write(self, work: Work) -> BatchResult:
        """Write the batch to every store (the last stage); a failure that is not infrastructure
        is retried per operation so that only the operation that causes it is dead-lettered.
        Raises InfrastructureError with nothing acknowledged."""
        t0 = time.perf_counter()
        result = work.result
        by_id = {op.video_id: work.messages[i] for i, op in work.ops}
        batch = [op for _, op in work.ops]
        try:
            written = self._write_batch(batch, by_id, result)
        except Exception as exc:
            if classify(exc) is not Handling.DEAD_LETTER:
                raise
            log.warning("batch write failed, retrying per event events=%s error_class=%s", len(batch), type(exc).__name__)
            written = []
            for op in batch:
                try:
                    written += self._write_batch([op], by_id, result)
                except Exception as one_exc:
                    result.dead.append(dead_letter_for(by_id[op.video_id], one_exc, "sink"))
        if self.copy_check is not None:
            self.copy_check.publish(written, work.copies)
        result.deleted = sum(isinstance(op, Tombstone) for op in written)
        result.indexed = len(written) - result.deleted
        result.sink_s = time.perf_counter() - t0
        self.metrics.stage_seconds.labels("write").observe(result.sink_s)
        self.metrics.record(result)
        return result

    def stages(self) -> list[tuple[str, Callable[[Any], Any]]]:
        """The batch's way through the pipeline, for the staged runner: messages -> `Work` ->
        `Work` -> `BatchResult`. Each stage runs in a thread of its own, one batch at a time."""
        return [("decode", self.decode), ("embed", self.embed), ("build", self.build), ("write", self.write)]

    def process(self, messages: list[Message]) -> BatchResult:
        """Every stage, one after the other, on this thread (isolation, bulk callers, tests)."""
        return self.write(self.encode(messages))
