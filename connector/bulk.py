"""Write videos whose base features are already known straight into the sinks, without Kafka.

Used to load evaluation sets and benchmarks, and by re-embedding: the same documents
(`build_doc`), the same sinks and the same versioned writes as the streaming indexer, in batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vidsearch.connector.documents import build_doc
from vidsearch.connector.events import VideoUpsert
from vidsearch.connector.sinks.base import Sink
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.fusion.embedder import DefaultEmbedder, VideoEmbedder


@dataclass
class Item:
    features: VideoFeatures
    version: int = 1
    language: str | None = None
    tags: Sequence[str] = ()
    published_at: Any = None
    media_uri: str | None = None


def upsert_event(item: Item) -> VideoUpsert:
    f = item.features
    return VideoUpsert(op="upsert", video_id=f.video_id, version=item.version, schema_version=1, title=f.title,
                       description=f.description, tags=list(item.tags or f.tags), language=item.language,
                       duration=f.duration_s or None, published_at=item.published_at,
                       media_uri=item.media_uri or (f.source or None), features="precomputed")


def write_items(sinks: Sequence[Sink], items: Iterable[Item], model_version: str, embedder: VideoEmbedder | None = None,
                batch: int = 256, on_batch: Callable[[int], None] | None = None,
                also: Sequence[tuple[str, VideoEmbedder]] = ()) -> int:
    """Write every item to every sink; returns the number written. Raises what the sinks raise.
    `also`: other versions the sinks write to, each with its own embedder (a re-embed in flight)."""
    embedder = embedder or DefaultEmbedder()
    for sink in sinks:
        sink.ensure()
    buf: list[Item] = []
    total = 0

    def flush() -> None:
        nonlocal total
        feats = [it.features for it in buf]
        vecs = embedder.vectors(feats)
        others = {v: e.vectors(feats) for v, e in also}
        docs = [build_doc(upsert_event(it), it.features, model_version, v) for it, v in zip(buf, vecs, strict=True)]
        for n, doc in enumerate(docs):
            if others:
                doc.by_version = {model_version: vecs[n], **{v: o[n] for v, o in others.items()}}
        for sink in sinks:
            result = sink.write(docs)
            if result.rejected:
                raise ValueError(f"{sink.name} rejected {len(result.rejected)} documents: {list(result.rejected.items())[:3]}")
        total += len(docs)
        if on_batch:
            on_batch(len(docs))
        buf.clear()

    for item in items:
        buf.append(item)
        if len(buf) >= batch:
            flush()
    if buf:
        flush()
    return total
