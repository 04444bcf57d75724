"""The shared indexing pipeline: messages -> validated events -> features -> documents -> every
store. Sources (Kafka, files) and stores (one backend per engine) are adapters around it; the
documents are built and written by the `DocumentWriter`, which bulk loads and re-embedding use too.

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
from typing import TypeVar

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
    encode_s: float = 0.0
    sink_s: float = 0.0


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
        self._copies: dict[str, list[CopyMatch]] = {}
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

    def encode(self, messages: list[Message]) -> tuple[list[tuple[int, Operation]], list[DeadLetter]]:
        """Validate and encode. Returns the operations to write and the dead letters; raises only
        infrastructure and deployment errors."""
        ops: list[tuple[int, Operation]] = []
        dead: list[DeadLetter] = []
        upserts: list[Upsert] = []
        for i, msg in enumerate(messages):
            try:
                event = self._parse(msg)
                if isinstance(event, VideoDelete):
                    ops.append((i, Tombstone(event.video_id, event.resolved_version)))
                else:
                    upserts.append((i, event, self.encoder.base_features(event)))
            except Exception as exc:
                dead.append(dead_letter_for(msg, exc, "encode"))
        upserts = self._per_event(upserts, messages, dead, "text_metadata", self._metadata)
        docs = self._per_event(upserts, messages, dead, "embed", self._documents)
        self._keep_features(docs, {u[0]: u for u in upserts})
        if self.copy_check is not None:  # the frame index down is infrastructure: raises, batch replayed
            self._copies = self.copy_check.tag([op for _, op in docs if isinstance(op, IndexDoc)])
        return latest_per_video(ops + docs), dead

    def _write_batch(self, ops: list[Operation], messages: dict[str, Message], result: BatchResult) -> list[Operation]:
        """Every store (the writer); returns the operations every store took. Documents a store
        refused are dead-lettered with the store and its reason."""
        outcome = self.writer.write(ops)
        result.stale = max(result.stale, outcome.stale)
        for vid, why in outcome.rejected.items():
            result.dead.append(DeadLetter(messages[vid], "StoreRejectedError", why.reason, why.stage))
        return outcome.written

    def write(self, ops: list[tuple[int, Operation]], messages: list[Message], result: BatchResult) -> None:
        """Write the batch; a failure that is not infrastructure is retried per operation so that
        only the operation that causes it is dead-lettered. Raises InfrastructureError with
        nothing acknowledged."""
        by_id = {op.video_id: messages[i] for i, op in ops}
        batch = [op for _, op in ops]
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
            self.copy_check.publish(written, self._copies)
        result.deleted = sum(isinstance(op, Tombstone) for op in written)
        result.indexed = len(written) - result.deleted

    def process(self, messages: list[Message]) -> BatchResult:
        result = BatchResult()
        t0 = time.perf_counter()
        ops, result.dead = self.encode(messages)
        result.encode_s = time.perf_counter() - t0
        self.metrics.stage_seconds.labels("encode").observe(result.encode_s)
        t1 = time.perf_counter()
        self.write(ops, messages, result)
        result.sink_s = time.perf_counter() - t1
        self.metrics.record(result)
        return result
