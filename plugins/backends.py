"""The backend registry: a configured store name -> the class that implements `VideoStore` for
that engine. The only place in vidsearch that knows which engines exist; everything else asks it.

Backends are imported lazily (by dotted path) so a deployment that uses only Milvus never imports
opensearch-py, and the reverse.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from vidsearch.core.errors import ConfigError
from vidsearch.core.settings import Settings
from vidsearch.core.store import VideoStore

BACKENDS: dict[str, str] = {
    "opensearch": "vidsearch.plugins.opensearch.store:OpenSearchVideoStore",
    "milvus": "vidsearch.plugins.milvus.store:MilvusVideoStore",
}


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
