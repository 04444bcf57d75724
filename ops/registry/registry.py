"""The model registry, kept in Redis so every indexer, worker and API process sees one truth.

Keys, per catalogue (P = vidsearch:models:<index alias>):
P                           hash  version id -> JSON entry
P:current                   str   the version the aliases point at
P:previous                  str   the version a rollback returns to
P:retain                    zset  old versions kept for rollback, scored by when they may go
P:extra                     set   versions live ingestion also writes to (a re-embed in flight,
                                  or the previous version kept warm for rollback)

The settings' `indexer.model_version` (the documented default fusion) is the implicit first entry,
so a fresh deployment has a current version without registering anything.
"""

from __future__ import annotations

import builtins
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vidsearch.core.errors import VidsearchError
from vidsearch.core.settings import Settings

PREFIX = "vidsearch:models"


class RegistryError(VidsearchError):
    """Unknown version, a malformed model folder, or a promotion that cannot happen."""


@dataclass
class ModelEntry:
    id: str
    kind: str  # "default" | "balanced"
    created_at: float
    path: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    encoder_versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def redis_client(settings: Settings):  # -> redis.Redis
    import redis

    from vidsearch.ops.celery_app import redis_url

    return redis.Redis.from_url(redis_url(settings.redis), decode_responses=True, socket_timeout=10)


class ModelRegistry:
    def __init__(self, settings: Settings, client: Any = None, prefix: str | None = None) -> None:
        self.settings = settings
        self.r = client or redis_client(settings)
        # one registry per catalogue (alias), so several catalogues can share a Redis
        self.prefix = prefix or f"{PREFIX}:{settings.indexer.index_prefix}"

    def _key(self, name: str = "") -> str:
        return f"{self.prefix}:{name}" if name else self.prefix

    def default_entry(self) -> ModelEntry:
        return ModelEntry(id=self.settings.indexer.model_version, kind="default", created_at=0.0)

    def list(self) -> list[ModelEntry]:
        raw = self.r.hgetall(self._key())
        entries = {e.id: e for e in (ModelEntry(**json.loads(v)) for v in raw.values())}
        entries.setdefault(self.default_entry().id, self.default_entry())
        return sorted(entries.values(), key=lambda e: e.created_at)

    def get(self, version: str) -> ModelEntry:
        if version == self.default_entry().id:
            return self.default_entry()
        raw = self.r.hget(self._key(), version)
        if raw is None:
            raise RegistryError(f"unknown model version {version!r}; `vidsearch models list` shows the registered ones")
        return ModelEntry(**json.loads(raw))

    def register(self, model_dir: Path) -> ModelEntry:
        card_path = Path(model_dir) / "card.json"
        if not card_path.is_file():
            raise RegistryError(f"{model_dir}: no card.json (is it a `vidsearch train` output?)")
        card = json.loads(card_path.read_text())
        for name in ("video_tower.onnx", "query_tower.onnx"):
            if not (Path(model_dir) / name).is_file():
                raise RegistryError(f"{model_dir}: missing {name}")
        entry = ModelEntry(id=card["version"], kind="balanced", created_at=time.time(), path=str(Path(model_dir).resolve()),
                           metrics=card.get("metrics", {}), encoder_versions=card.get("encoder_versions", {}))
        self.r.hset(self._key(), entry.id, entry.to_json())
        return entry

    def current(self) -> str:
        return self.r.get(self._key("current")) or self.default_entry().id

    def previous(self) -> str | None:
        return self.r.get(self._key("previous"))

    def set_current(self, version: str, previous: str | None) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.set(self._key("current"), version)
        if previous is not None:
            pipe.set(self._key("previous"), previous)
        pipe.execute()

    def extra_targets(self) -> builtins.list[str]:  # in the class body `list` is the method above
        return sorted(self.r.smembers(self._key("extra")))

    def add_extra(self, version: str) -> None:
        self.r.sadd(self._key("extra"), version)

    def remove_extra(self, version: str) -> None:
        self.r.srem(self._key("extra"), version)

    def retain(self, version: str, until: float) -> None:
        self.r.zadd(self._key("retain"), {version: until})

    def expired(self, now: float) -> builtins.list[str]:
        return list(self.r.zrangebyscore(self._key("retain"), 0, now))

    def forget_retained(self, version: str) -> None:
        self.r.zrem(self._key("retain"), version)

    def write_versions(self) -> builtins.list[str]:
        """Current first, then every extra target: what live ingestion writes to."""
        cur = self.current()
        return [cur, *[v for v in self.extra_targets() if v != cur]]
