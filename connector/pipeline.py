"""The shared indexing pipeline: messages -> validated events -> features -> documents -> every
sink. Sources (Kafka, files) and stores (Milvus, OpenSearch) are adapters around it.

Invariants: a message either reaches every sink or becomes a dead letter with its reason; a
StoreUnavailableError leaves the batch unacknowledged (the caller rewinds and retries it); a
document one store refuses for good is removed from the stores that took it, then dead-lettered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vidsearch.connector.documents import Operation, Tombstone, build_doc, latest_per_video
from vidsearch.connector.encoding import EventEncoder
from vidsearch.connector.errors import InvalidEventError
from vidsearch.connector.events import VideoDelete, VideoUpsert, parse_event
from vidsearch.connector.feature_store import FileFeatureStore
from vidsearch.connector.messages import DeadLetter, Message
from vidsearch.connector.metrics import Metrics
from vidsearch.connector.sinks.base import Sink
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.fusion.embedder import DefaultEmbedder, VideoEmbedder
from vidsearch.plugins.retrieval.ncl_source import NclSource
from vidsearch.ops.settings import Settings

log = logging.getLogger(__name__)
ModelSource = Callable[[], list[tuple[str, VideoEmbedder]]]  # (version, embedder) per write target, current first


@dataclass
class BatchResult:
    indexed: int = 0
    deleted: int = 0
    stale: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    encode_s: float = 0.0
    sink_s: float = 0.0


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        encoder: EventEncoder,
        sinks: list[Sink],
        features: FileFeatureStore | None,
        metrics: Metrics | None = None,
        model: ModelSource | None = None,
    ) -> None:
        self.settings, self.encoder, self.sinks, self.features = settings, encoder, sinks, features
        self.metrics = metrics or Metrics()
        self.ncl = NclSource(settings)
        default = [(settings.indexer.model_version, DefaultEmbedder())]
        self.model: ModelSource = model or (lambda: default)

    def ensure_stores(self) -> None:
        for sink in self.sinks:
            sink.ensure()

    def _parse(self, msg: Message) -> VideoUpsert | VideoDelete:
        event = parse_event(msg.value, self.settings.indexer.max_event_bytes)
        if msg.key is not None and msg.key.decode("utf-8", "replace") != event.video_id:
            raise InvalidEventError(f"message key {msg.key[:80]!r} does not match video_id {event.video_id!r}", stage="validate")
        return event

    def encode(self, messages: list[Message]) -> tuple[list[tuple[int, Operation]], list[DeadLetter]]:
        """Validate and encode; every failure here is permanent for that message."""
        ops: list[tuple[int, Operation]] = []
        dead: list[DeadLetter] = []
        upserts: list[tuple[int, VideoUpsert, VideoFeatures]] = []
        for i, msg in enumerate(messages):
            try:
                event = self._parse(msg)
                if isinstance(event, VideoDelete):
                    ops.append((i, Tombstone(event.video_id, int(event.version))))
                else:
                    upserts.append((i, event, self.encoder.base_features(event)))
            except InvalidEventError as exc:
                dead.append(DeadLetter(msg, type(exc).__name__, str(exc), exc.stage))
        self.encoder.apply_metadata([(e, f) for _, e, f in upserts])
        models = self.model()  # current version first, then every other write target
        all_feats = [f for _, _, f in upserts]
        per_version = {v: (e.vectors(all_feats) if upserts else []) for v, e in models}
        current = models[0][0]
        ncl = self.ncl()
        for n, (i, event, feats) in enumerate(upserts):
            if self.features is not None:
                self.features.put(event.video_id, int(event.version), feats)
            doc = build_doc(event, feats, current, per_version[current][n])
            if ncl is not None:
                doc.ncl_bias = ncl.bias(doc.vectors["fused"])
            if len(models) > 1:
                doc.by_version = {v: vecs[n] for v, vecs in per_version.items()}
            ops.append((i, doc))
        return latest_per_video(ops), dead

    def write(self, ops: list[tuple[int, Operation]], messages: list[Message], result: BatchResult) -> None:
        """Every sink, in order; raises StoreUnavailableError with nothing acknowledged."""
        batch = [op for _, op in ops]
        by_id = {op.video_id: messages[i] for i, op in ops}
        done: list[Sink] = []
        for sink in self.sinks:
            t0 = time.perf_counter()
            res = sink.write(batch)
            self.metrics.sink_seconds.labels(sink.name).observe(time.perf_counter() - t0)
            result.stale = max(result.stale, res.stale)
            if res.rejected:
                for prior in done:
                    prior.remove(list(res.rejected))
                for vid, reason in res.rejected.items():
                    result.dead.append(DeadLetter(by_id[vid], "StoreRejectedError", reason, f"sink:{sink.name}"))
                batch = [op for op in batch if op.video_id not in res.rejected]
            done.append(sink)
        result.deleted = sum(isinstance(op, Tombstone) for op in batch)
        result.indexed = len(batch) - result.deleted

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
