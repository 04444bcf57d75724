"""Where live ingestion writes, read from the registry and cached for a second, so a re-embed
starting (or an alias swap) reaches running indexers within a batch or two without a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from vidsearch.core.errors import StoreUnavailableError
from vidsearch.core.settings import Settings
from vidsearch.ops.registry.registry import ModelRegistry

ROUTING_TTL_S = 1.0
T = TypeVar("T")


class RegistryUnavailableError(StoreUnavailableError):
    """Redis (the model registry) did not answer: an outage, so the indexer pauses and retries;
    the events are not at fault and must not be dead-lettered."""

    def __init__(self, message: str) -> None:
        super().__init__("registry", message)


def _asking_redis(fn: Callable[[], T]) -> T:
    """`fn()`, with Redis's connection and timeout errors raised as an outage. Other Redis errors
    (a wrong type, a refused command) are a broken deployment and pass through unchanged."""
    import redis

    try:
        return fn()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RegistryUnavailableError(f"{type(exc).__name__}: {exc}") from exc


class CachedVersions:
    def __init__(self, registry: ModelRegistry, ttl_s: float = ROUTING_TTL_S) -> None:
        self.registry, self.ttl_s = registry, ttl_s
        self._value: list[str] = []
        self._at = 0.0

    def __call__(self) -> list[str]:
        now = time.monotonic()
        if not self._value or now - self._at > self.ttl_s:
            self._value = _asking_redis(self.registry.write_versions)
            self._at = now
        return self._value


def registry_routing(settings: Settings):  # -> (VersionSource, ModelSource)
    """Write targets and the embedding model, both following the model registry."""
    from vidsearch.ops.registry.embedders import embedder_for

    registry = ModelRegistry(settings)
    versions = CachedVersions(registry)

    def model():  # noqa: ANN202
        return [(v, embedder_for(_asking_redis(lambda v=v: registry.get(v)))) for v in versions()]

    return versions, model
