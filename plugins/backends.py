"""The backend registry: a configured store name -> the class that implements `VideoStore` for
that engine. The only place in vidsearch that knows which engines exist; everything else asks it.

Backends are imported lazily (by dotted path) so a deployment that uses only Milvus never imports
opensearch-py, and the reverse.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from vidsearch.core.errors import ConfigError, InfrastructureError
from vidsearch.core.frames import FrameStore
from vidsearch.core.settings import Settings
from vidsearch.core.store import VideoStore

BACKENDS: dict[str, str] = {
    "opensearch": "vidsearch.plugins.opensearch.store:OpenSearchVideoStore",
    "milvus": "vidsearch.plugins.milvus.store:MilvusVideoStore",
}


# Frame indices for same-source search (core/frames.py): one row per keyframe fingerprint.
FRAME_BACKENDS: dict[str, str] = {
    "milvus": "vidsearch.plugins.milvus.frames:MilvusFrameStore",
}


def frame_collection(settings: Settings, fingerprint_version: str) -> str:
    """`<prefix>_<fingerprint version>`: a new whitening writes a new collection, so frames of two
    projections never meet in one ANN search."""
    tag = "".join(c if c.isalnum() else "_" for c in fingerprint_version.replace("fingerprint-", ""))
    prefix = settings.copies.collection_prefix or f"{settings.indexer.collection_prefix}__frames"
    return f"{prefix}_{tag}"


def open_frame_store(settings: Settings, fingerprint_version: str, dim: int, **options: object) -> FrameStore:
    """The configured frame index (`copies.store`); an unknown name fails at start-up."""
    name = settings.copies.store
    if name not in FRAME_BACKENDS:
        raise ConfigError(f"unknown frame store {name!r} (copies.store): choose from {', '.join(FRAME_BACKENDS)}")
    module, _, cls = FRAME_BACKENDS[name].partition(":")
    store: FrameStore = getattr(importlib.import_module(module), cls)(
        settings, frame_collection(settings, fingerprint_version), dim=dim, **options)
    return store


def unavailable_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean "this store cannot answer now", over every registered backend (each
    declares its own `UNAVAILABLE_ERRORS`), plus the transport errors any client may raise."""
    errors: list[type[Exception]] = [InfrastructureError, ConnectionError, TimeoutError, OSError]
    for path in BACKENDS.values():
        module = importlib.import_module(path.partition(":")[0])
        errors.extend(getattr(module, "UNAVAILABLE_ERRORS", ()))
    return tuple(dict.fromkeys(errors))


def names() -> list[str]:
    return list(BACKENDS)


def check_names(configured: Sequence[str]) -> None:
    """Fail at start-up (a deployment error) on a store name no backend is registered for."""
    unknown = [n for n in configured if n not in BACKENDS]
    if unknown:
        raise ConfigError(f"unknown store {', '.join(map(repr, unknown))}: choose from {', '.join(BACKENDS)} "
                          "(indexer.sinks, retrieval.lexical_store, retrieval.dense_store)")


def open_store(name: str, settings: Settings, **options: object) -> VideoStore:
    """A backend instance. `options` are backend constructor options (e.g. `timeout_s`)."""
    check_names([name])
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(settings, **options)


def configured_stores(settings: Settings, **options: object) -> list[VideoStore]:
    """Every store the catalogue is written to (`indexer.sinks`), in the configured order."""
    return [open_store(name, settings, **options) for name in settings.indexer.sinks]


def search_roles(settings: Settings) -> tuple[str, str, dict[str, str]]:
    """(lexical store, dense store, role -> fallback store) for the retriever.

    Defaults: OpenSearch serves both roles, with Milvus as the fallback of each, unless Milvus is
    embedded (a milvus-lite file: the no-server default), which then serves both roles alone.
    `retrieval.lexical_store` / `dense_store` override the roles; the fallback of a role is the
    first other configured store, when `retrieval.fallback` is on."""
    from vidsearch.plugins.milvus.client import is_embedded

    cfg = settings.retrieval
    embedded = is_embedded(settings.milvus.uri)
    default = "milvus" if embedded else "opensearch"
    lexical, dense = cfg.lexical_store or default, cfg.dense_store or default
    check_names([lexical, dense])
    fallbacks: dict[str, str] = {}
    if cfg.fallback and not embedded:
        candidates = [n for n in (*settings.indexer.sinks, *BACKENDS) if n in BACKENDS]
        for role, name in (("lexical", lexical), ("dense", dense)):
            other = next((n for n in candidates if n != name), None)
            if other is not None:
                fallbacks[role] = other
    return lexical, dense, fallbacks
