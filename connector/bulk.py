"""Write videos whose base features are already known straight into the sinks, without Kafka.

Used to load evaluation sets and benchmarks: the same document writer, the same stores and the same
versioned writes as the streaming indexer, in batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vidsearch.connector.events import VideoUpsert
from vidsearch.connector.writer import DocumentWriter
from vidsearch.core.errors import DataError
from vidsearch.encoders.features import VideoFeatures


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


class BulkRejectedError(DataError):
    """A bulk load met documents a store refused for good; the load stops at that batch (the
    documents before it are written) and the error lists the refusals."""

    stage = "bulk"


def write_items(writer: DocumentWriter, items: Iterable[Item], batch: int = 256,
                on_batch: Callable[[int], None] | None = None, refresh: bool = True) -> int:
    """Write every item through the document writer (every store, every write version with its
    model's vectors); returns the number written. Raises what the stores raise, and
    `BulkRejectedError` with the reasons when a store refuses documents: a bulk load has no
    dead-letter topic, so its caller is told instead. `refresh`: make the load visible to searches."""
    writer.ensure()
    buf: list[Item] = []
    total = 0

    def flush() -> None:
        nonlocal total
        docs = writer.build([(upsert_event(it), it.features) for it in buf])
        outcome = writer.write(docs)
        if outcome.rejected:
            shown = "; ".join(f"{vid}: {why.store}: {why.reason[:200]}" for vid, why in list(outcome.rejected.items())[:3])
            raise BulkRejectedError(f"{len(outcome.rejected)} documents refused: {shown}")
        total += len(outcome.written)
        if on_batch:
            on_batch(len(docs))
        buf.clear()

    for item in items:
        buf.append(item)
        if len(buf) >= batch:
            flush()
    if buf:
        flush()
    if refresh:
        for store in writer.stores:
            for version in writer.versions():
                store.refresh(version)
    return total
