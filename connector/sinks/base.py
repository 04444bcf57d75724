"""The sink contract: a store only says how to prepare itself and write a batch.

Delivery guarantee (with the offset checkpoint): at-least-once delivery made idempotent by the
stores: documents are keyed by video_id and written conditionally on their version, so a batch
replayed after a crash or an outage converges to the same state, never to duplicates or to an
older version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Protocol

from vidsearch.core.documents import Operation
from vidsearch.core.settings import Settings


@dataclass
class WriteResult:
    written: int = 0
    stale: int = 0  # older than what the store holds: skipped on purpose
    rejected: dict[str, str] = field(default_factory=dict)  # video_id -> reason (dead-letter them)


class Sink(Protocol):
    name: str

    def ensure(self) -> None:
        """Create the versioned index/collection and its alias when missing; idempotent."""

    def write(self, ops: list[Operation]) -> WriteResult:
        """Write one batch (at most one op per video). Raises StoreUnavailableError when the store
        does not acknowledge after retries; per-document refusals come back in `rejected`."""

    def remove(self, video_ids: list[str]) -> None:
        """Remove these videos from every write target (re-embedding's catch-up of deletions).
        Never used to undo a write another store refused: that would delete the previous good
        version too."""

    def healthy(self) -> bool:
        """A cheap real request; never raises."""


VersionSource = Callable[[], list[str]]


def static_versions(settings: Settings) -> VersionSource:
    """The configured versions: `indexer.model_version` first, then `indexer.write_versions`."""
    cfg = settings.indexer
    versions = [cfg.model_version, *[v for v in cfg.write_versions if v != cfg.model_version]]
    return lambda: versions
