"""The one document writer: every path that puts videos into the stores (live ingestion, bulk
loads, re-embedding) builds and writes its documents here, so all of them write the same fields
and vectors and treat a refused document the same way.

- **Build**: one `IndexDoc` per video from its event and base features, with the vectors of
  every model version written to (`by_version`), the current version's first.
- **Write**: every store, every write version of each store (the registry's current version and
  a re-embedding target, or the static settings). A store's write is conditional on the event
  version, so replays converge.
- **Refusals**: a document a store refuses for good (mapping, size) is reported with the store
  and the reason, and not sent to the stores after it; the caller dead-letters it (Kafka DLQ,
  the re-embedding job's failed list, a bulk load's report). What earlier stores already took is
  left alone: deleting it would also delete the previous good version of that video. The
  divergence is logged and counted, and the dead letter can be replayed once the cause is fixed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vidsearch.connector.documents import build_doc
from vidsearch.connector.frame_index import FrameIndex
from vidsearch.connector.metrics import Metrics
from vidsearch.core.documents import IndexDoc, Operation
from vidsearch.core.settings import Settings
from vidsearch.core.store import VersionSource, VideoStore, static_versions
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.fusion.embedder import DefaultEmbedder, VideoEmbedder

log = logging.getLogger(__name__)
ModelSource = Callable[[], list[tuple[str, VideoEmbedder]]]  # (version, embedder) per write target, current first


@dataclass(frozen=True)
class Rejection:
    """Why one store refused one document for good, and which stores hold it anyway."""

    store: str
    reason: str
    kept_by: tuple[str, ...] = ()

    @property
    def stage(self) -> str:
        return f"sink:{self.store}"


@dataclass
class WriteOutcome:
    written: list[Operation] = field(default_factory=list)  # taken by every store, every version
    stale: int = 0  # skipped by a store as older than what it holds (the most any store skipped)
    rejected: dict[str, Rejection] = field(default_factory=dict)  # video id -> why


def default_models(settings: Settings) -> ModelSource:
    """The documented default fusion under the configured model version."""
    models: list[tuple[str, VideoEmbedder]] = [(settings.indexer.model_version, DefaultEmbedder())]
    return lambda: models


class DocumentWriter:
    """Builds documents and writes them to every store; see the module docstring for the policy."""

    def __init__(self, stores: Sequence[VideoStore], versions: VersionSource, models: ModelSource,
                 metrics: Metrics | None = None, frames: FrameIndex | None = None) -> None:
        self.stores, self.versions, self.models = list(stores), versions, models
        self.metrics = metrics or Metrics()
        self.frames = frames  # the copy-search frame index, written after every video store

    @classmethod
    def from_settings(cls, settings: Settings, stores: Sequence[VideoStore], versions: VersionSource | None = None,
                      models: ModelSource | None = None, metrics: Metrics | None = None,
                      frames: FrameIndex | None = None) -> DocumentWriter:
        return cls(stores, versions or static_versions(settings), models or default_models(settings), metrics, frames)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stores]

    def ensure(self) -> None:
        """Every write version exists in every store; the alias goes to the current version only
        when there is no alias yet (an existing alias is moved by the swap, never here)."""
        versions = self.versions()
        for store in self.stores:
            for i, version in enumerate(versions):
                store.ensure(version, alias=i == 0)
        if self.frames is not None:
            self.frames.ensure()

    def build(self, items: Sequence[tuple[Any, VideoFeatures]], ncl_bias: Callable[[Any], float] | None = None) -> list[IndexDoc]:
        """(validated upsert event, base features) -> documents with every model version's vectors."""
        if not items:
            return []
        models = self.models()
        feats = [f for _, f in items]
        per_version = {version: embedder.vectors(feats) for version, embedder in models}
        current = models[0][0]
        docs = []
        for n, (event, f) in enumerate(items):
            doc = build_doc(event, f, current, per_version[current][n])
            if ncl_bias is not None:
                doc.ncl_bias = ncl_bias(doc.vectors["fused"])
            if self.frames is not None:
                doc.frames = self.frames.frames_of(doc.video_id, doc.version, f)
            if len(models) > 1:
                doc.by_version = {version: vectors[n] for version, vectors in per_version.items()}
            docs.append(doc)
        return docs

    def write(self, ops: Sequence[Operation]) -> WriteOutcome:
        """Write a batch (at most one operation per video) to every store and write version.
        Raises what a store raises when it does not acknowledge (`StoreUnavailableError`): then
        nothing is acknowledged, and the caller replays the batch."""
        out = WriteOutcome()
        pending = list(ops)
        versions = self.versions()
        accepted_by: list[str] = []
        for store in self.stores:
            if not pending:
                break
            t0 = time.perf_counter()
            stale = 0
            for version in versions:
                res = store.write(version, pending)
                stale = max(stale, res.stale)
                if res.rejected:
                    for vid, reason in res.rejected.items():
                        self._reject(out, vid, store.name, reason, accepted_by)
                    pending = [op for op in pending if op.video_id not in res.rejected]
            self.metrics.sink_seconds.labels(store.name).observe(time.perf_counter() - t0)
            out.stale = max(out.stale, stale)
            accepted_by.append(store.name)
        if self.frames is not None and pending:
            t0 = time.perf_counter()
            out.stale = max(out.stale, self.frames.write(pending))
            self.metrics.sink_seconds.labels(self.frames.name).observe(time.perf_counter() - t0)
        out.written = pending
        return out

    def _reject(self, out: WriteOutcome, video_id: str, store: str, reason: str, accepted_by: list[str]) -> None:
        if accepted_by:
            self.metrics.divergence.labels(store).inc()
            log.error("document refused by one store after others took it video_id=%s refused_by=%s kept_by=%s reason=%s",
                      video_id, store, ",".join(accepted_by), reason[:300])
        else:
            log.warning("document refused store=%s video_id=%s reason=%s", store, video_id, reason[:300])
        out.rejected.setdefault(video_id, Rejection(store, reason, tuple(accepted_by)))

    def remove(self, video_ids: Sequence[str]) -> None:
        """Remove videos from every store's write versions (re-embedding's catch-up of deletions)."""
        if not video_ids:
            return
        for store in self.stores:
            for version in self.versions():
                store.remove(version, list(video_ids))
        # The frame index keeps no per-model versions: frames go with the video's removal from
        # the catalogue (a delete event), not with a model version's catch-up.

    def healthy(self) -> dict[str, bool]:
        return {store.name: store.healthy() for store in self.stores}

    def close(self) -> None:
        for store in self.stores:
            store.close()
        if self.frames is not None:
            self.frames.close()
