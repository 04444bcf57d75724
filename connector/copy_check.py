"""The ingest-time copy check: tag each incoming video with the catalogue videos it shares
footage with (`IndexDoc.copies`) and publish one `videos.copies` event per tagged video.

It runs on the batch's documents after they are built and before they are written, against the
frame index as it stands (videos earlier in the stream, not others of the same batch); the event
goes out, acks=all, only after every store took the document and before the batch's offsets are
committed. A replayed batch publishes again: consumers of the copy topic get each event at least
once and should key on (video_id, version). The index holds no mirrored frames and ingest has no
media for them, so a left-right flipped copy is found on demand (`vidsearch copies`), not here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from vidsearch.connector.kafka.errors import KafkaUnavailableError
from vidsearch.connector.sources.base import EventProducer
from vidsearch.core.documents import IndexDoc, Operation
from vidsearch.plugins.copies.search import CopyMatch, CopySearcher

log = logging.getLogger(__name__)
FLUSH_S = 30.0


class CopyCheck:
    def __init__(self, searcher: CopySearcher, producer: EventProducer | None, topic: str, limit: int = 10) -> None:
        self.searcher, self.producer, self.topic, self.limit = searcher, producer, topic, limit

    def tag(self, docs: Sequence[IndexDoc]) -> dict[str, list[CopyMatch]]:
        """Sets `copies` on each document with frames; returns the matches by video id."""
        found: dict[str, list[CopyMatch]] = {}
        for doc in docs:
            if doc.frames is None or not len(doc.frames.times):
                continue
            matches = self.searcher.search(doc.frames, exclude=[doc.video_id], limit=self.limit)
            doc.copies = [m.reference_id for m in matches]
            if matches:
                found[doc.video_id] = matches
        return found

    def publish(self, written: Sequence[Operation], found: dict[str, list[CopyMatch]]) -> int:
        """One event per written, tagged document; raises KafkaUnavailableError when Kafka did
        not acknowledge them (the batch is then replayed, nothing committed)."""
        if self.producer is None:
            return 0
        sent = 0
        for op in written:
            if isinstance(op, IndexDoc) and op.video_id in found:
                body = {"video_id": op.video_id, "version": op.version,
                        "matches": [m.as_dict() for m in found[op.video_id]]}
                self.producer.produce(self.topic, op.video_id.encode(), json.dumps(body).encode())
                sent += 1
        if sent:
            failures = self.producer.flush(FLUSH_S)
            if failures:
                raise KafkaUnavailableError(f"{len(failures)} copy events undelivered: {failures[:3]}", store="copies")
            log.info("copy events published topic=%s events=%s", self.topic, sent)
        return sent

    def close(self) -> None:
        if self.producer is not None:
            self.producer.close()
