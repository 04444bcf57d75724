"""The store contract: what every search-engine backend (one per engine, under `plugins/<engine>/`)
implements, and what everything above it (the document writer, the retriever, NCL, plugin
install, re-embedding, the alias swap, the consistency check) is written against.

Why a contract and not a base class: the engines share no code worth inheriting (OpenSearch
versions documents itself, Milvus needs a tombstone collection for that), but they must agree on
behaviour. `tests/conformance/` pins that behaviour once, parametrised over every backend against
the real services; a new backend is added by registering it (`vidsearch.plugins.backends`) and
passing that suite.

Model versions and physical names: each model version has its own index/collection (`physical`),
and one alias (`alias`, the configured prefix) points at the version searches read. Every read
takes `version=None` (through the alias) or a model version (that version's index/collection,
whether or not the alias points at it).

Document versions: `write` is conditional on each video's event version. An operation older than
what the store holds for that video (a live document or a delete tombstone) is skipped and
counted `stale`; the same version again overwrites (idempotent replays); a `Tombstone` removes the
video and keeps its version, so an older upsert replayed later cannot resurrect it.

Stored documents (what `fetch` and `scan` return) are plain dicts with the keys in
`vidsearch.core.documents.STORED_FIELDS`; a field a backend does not keep is None / empty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vidsearch.core.documents import Operation
from vidsearch.core.filters import Filters
from vidsearch.core.settings import Settings


@dataclass
class WriteResult:
    written: int = 0
    stale: int = 0  # older than what the store holds: skipped on purpose
    rejected: dict[str, str] = field(default_factory=dict)  # video_id -> reason (dead-letter them)

    def merge(self, other: WriteResult) -> WriteResult:
        self.written += other.written
        self.stale += other.stale
        self.rejected.update(other.rejected)
        return self


class Scored(dict):  # dict[str, float]
    """Scores by video id, best first, plus the light fields each hit came with (`docs`: title,
    language, duration, tags), so a page of results needs no extra round trip unless moments ask
    for keyframes. Scores are the store's own (higher is better)."""

    def __init__(self, scores: dict[str, float], docs: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__(scores)
        self.docs = docs or {}


VersionSource = Callable[[], list[str]]


def static_versions(settings: Settings) -> VersionSource:
    """The configured write versions: `indexer.model_version` first, then `indexer.write_versions`."""
    cfg = settings.indexer
    versions = [cfg.model_version, *[v for v in cfg.write_versions if v != cfg.model_version]]
    return lambda: versions


@runtime_checkable
class SearchStore(Protocol):
    """The read side the retriever fuses over (a `VideoStore`, or a view of one pinned to a
    version). Filters are applied inside each search, so a filtered query still returns k hits."""

    name: str

    def bm25(self, text: str, filters: Filters, k: int, version: str | None = None) -> Scored: ...

    def knn(self, field: str, vector: np.ndarray, filters: Filters, k: int, version: str | None = None) -> Scored:
        """`field` is a stored vector field: `vec_fused`, `vec_ncl` (query [q; 1]), `vec_<modality>`."""
        ...

    def fetch(self, ids: Sequence[str], version: str | None = None) -> dict[str, dict[str, Any]]: ...


@runtime_checkable
class VideoStore(SearchStore, Protocol):
    """One search engine holding the video catalogue, one index/collection per model version."""

    name: str  # the registry name ("opensearch", "milvus")
    alias: str  # what searches read through (the configured prefix)
    # Its stored documents keep every field re-embedding needs, unclipped; re-embedding enumerates
    # the catalogue from the first configured store that does (else from the first store).
    keeps_full_documents: bool

    # -- schema and lifecycle ------------------------------------------------------------------
    def physical(self, version: str) -> str:
        """The index/collection name holding `version`."""
        ...

    def ensure(self, version: str, *, alias: bool = False) -> None:
        """Create `version`'s index/collection when missing (idempotent). With `alias`, point the
        alias at it only when the alias does not exist yet: an existing alias is moved by `swap`
        only, never by a process starting up."""
        ...

    def exists(self, version: str) -> bool: ...

    def drop(self, version: str) -> None:
        """Delete `version`'s index/collection (and whatever the backend keeps beside it)."""
        ...

    def install(self, version: str) -> dict[str, Any]:
        """`vidsearch plugins install`: templates, pipelines, schema, and `version` behind the
        alias when there is no alias yet. Idempotent; the report says what changed."""
        ...

    # -- writes --------------------------------------------------------------------------------
    def write(self, version: str, ops: Sequence[Operation]) -> WriteResult:
        """Write one batch (at most one op per video) into `version`, with that version's vectors
        (`op.for_version(version)`). Retries transient failures; raises `StoreUnavailableError`
        when the store does not acknowledge; a document refused for good (mapping, size) comes
        back in `rejected` and never fails the others."""
        ...

    def remove(self, version: str, video_ids: Sequence[str]) -> None:
        """Remove these videos from `version` (re-embedding's catch-up of deletions). Never used to
        undo a write another store refused: that would delete the previous good version too."""
        ...

    def refresh(self, version: str | None = None) -> None:
        """Make acknowledged writes visible to searches, counts and scans."""
        ...

    def write_ncl(self, biases: Mapping[str, float], version: str | None = None) -> int:
        """Set each listed video's `vec_ncl` to [fused; bias], keeping its document version (a
        video changed or deleted since its vector was read is left alone). Returns how many."""
        ...

    # -- reads (version None: through the alias) ------------------------------------------------
    def count(self, version: str | None = None) -> int: ...

    def scan(self, version: str | None = None, *, slice_id: int = 0, slices: int = 1,
             batch: int = 500) -> Iterator[list[dict[str, Any]]]:
        """Every live document (STORED_FIELDS), in pages. Over `slices` slices each live id comes
        exactly once, in the same slice on every call (a retried re-embedding chunk covers the same
        videos)."""
        ...

    def id_versions(self, version: str | None = None) -> dict[str, tuple[int, str]]:
        """video id -> (event version, model version) of every live document."""
        ...

    def vectors(self, field: str = "vec_fused", version: str | None = None) -> dict[str, np.ndarray]:
        """video id -> a stored vector field, for every live document that has it non-zero."""
        ...

    # -- alias ---------------------------------------------------------------------------------
    def alias_target(self) -> str | None:
        """The physical name the alias points at (None: no alias)."""
        ...

    def swap(self, version: str) -> dict[str, Any]:
        """Point the alias at `version` in one atomic step (a concurrent search sees the old or
        the new version, never an error or a mix). Returns {"alias", "from", "to"}."""
        ...

    def drop_alias(self) -> None: ...

    # -- health --------------------------------------------------------------------------------
    def healthy(self) -> bool:
        """A cheap real request (the store can serve reads and writes); never raises."""
        ...

    def close(self) -> None: ...


class PinnedStore:
    """A store's read side fixed to one model version: what the retriever gets when it must search
    a version that is not behind the alias (the re-embedding gate compares old and new)."""

    def __init__(self, store: SearchStore, version: str) -> None:
        self.store, self.version, self.name = store, version, store.name
        many = getattr(store, "many", None)
        if many is not None:  # keep a store's optional batched search (one round trip for all routes)
            self.many = lambda queries, filters, k, version=None: many(queries, filters, k, version=version or self.version)

    def bm25(self, text: str, filters: Filters, k: int, version: str | None = None) -> Scored:
        return self.store.bm25(text, filters, k, version=version or self.version)

    def knn(self, field: str, vector: np.ndarray, filters: Filters, k: int, version: str | None = None) -> Scored:
        return self.store.knn(field, vector, filters, k, version=version or self.version)

    def fetch(self, ids: Sequence[str], version: str | None = None) -> dict[str, dict[str, Any]]:
        return self.store.fetch(ids, version=version or self.version)
