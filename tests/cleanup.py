"""Names for what tests create on the shared stack, and the sweep that removes it afterwards.

Every name comes from `fresh_name` and carries this session's random token, so the session can
find what it left behind on the shared services (other sessions run against the same Kafka,
OpenSearch, Milvus and Redis at the same time) without ever touching anyone else's resources.

What a name `n` may have produced, and so what `drop_resources` removes:
- OpenSearch: indices `n*` and `n'*` (n' = n with `_` -> `-`: `index_prefix` is often n'),
  their aliases with them, and index templates `n*`/`n'*` (`plugins install`).
- Milvus (the shared server): aliases, then collections starting with `n` (`__tombstones` too).
- Kafka: topics starting with `n` (the topic, `n.dlq`) and consumer groups starting with `n`.
- Redis: keys containing `n` (Celery's `_kombu.binding.<queue>`, a queue list).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable

from vidsearch.core.settings import Settings

log = logging.getLogger(__name__)

SESSION = uuid.uuid4().hex[:6]
CREATED: list[str] = []  # every name handed out this session, in order


def fresh_name(base: str) -> str:
    """`t_<base>_<session><random>`: lowercase (OpenSearch), unique, traceable to this session."""
    clean = "".join(c if c.isalnum() else "_" for c in base.lower())[:30]
    name = f"t_{clean}_{SESSION}{uuid.uuid4().hex[:6]}"
    CREATED.append(name)
    return name


def _variants(names: Iterable[str]) -> set[str]:
    return {v for n in names for v in (n, n.replace("_", "-"))}


def _matches(resource: str, prefixes: set[str]) -> bool:
    return any(resource.startswith(p) for p in prefixes)


# --- listing -------------------------------------------------------------------------------------

def opensearch_resources(settings: Settings, prefixes: set[str]) -> dict[str, list[str]]:
    from vidsearch.plugins.opensearch.client import make_client

    client = make_client(settings.opensearch)
    indices: set[str] = set()
    templates: set[str] = set()
    for p in prefixes:
        rows = client.cat.indices(index=f"{p}*", format="json", h="index", expand_wildcards="all")
        indices.update(r["index"] for r in rows)
        found = client.indices.get_index_template(name=f"{p}*", ignore=404)
        templates.update(t["name"] for t in found.get("index_templates", []))
    return {"opensearch indices": sorted(indices), "opensearch templates": sorted(templates)}


def _aliases(client, collection: str = "") -> list[str]:  # noqa: ANN001 - MilvusClient
    found = client.list_aliases(collection_name=collection)
    return list(found.get("aliases", []) if isinstance(found, dict) else found)


def milvus_resources(settings: Settings, prefixes: set[str]) -> dict[str, list[str]]:
    from vidsearch.plugins.milvus.client import make_client

    client = make_client(settings.milvus, timeout=30.0)
    try:
        collections = [c for c in client.list_collections() if _matches(c, prefixes)]
        aliases = [a for a in _aliases(client) if _matches(a, prefixes)]
    finally:
        client.close()
    return {"milvus collections": sorted(collections), "milvus aliases": sorted(aliases)}


def kafka_topics(settings: Settings, prefixes: set[str]) -> list[str]:
    from confluent_kafka.admin import AdminClient

    from vidsearch.connector.kafka.config import kafka_client_config

    admin = AdminClient(kafka_client_config(settings.kafka))
    return sorted(t for t in admin.list_topics(timeout=15).topics if _matches(t, prefixes))


def redis_keys(settings: Settings, needles: set[str]) -> list[str]:
    import redis

    password = settings.redis.password.get_secret_value() if settings.redis.password else None
    client = redis.Redis.from_url(settings.redis.url, password=password, socket_timeout=10)
    try:
        return sorted({k.decode() for n in needles for k in client.scan_iter(match=f"*{n}*", count=1000)})
    finally:
        client.close()


def leftovers(settings: Settings, prefixes: Iterable[str]) -> dict[str, list[str]]:
    """Every resource on the stack whose name starts with one of `prefixes` (both spellings)."""
    wanted = _variants(prefixes)
    out = {**opensearch_resources(settings, wanted), **milvus_resources(settings, wanted),
           "kafka topics": kafka_topics(settings, wanted), "redis keys": redis_keys(settings, wanted)}
    return {kind: names for kind, names in out.items() if names}


def session_leftovers(settings: Settings) -> dict[str, list[str]]:
    """What carries this session's token: anything a test named with `fresh_name` and left."""
    found = leftovers(settings, ["t_"])
    found["redis keys"] = redis_keys(settings, {SESSION})
    mine = {kind: [n for n in names if SESSION in n] for kind, names in found.items()}
    return {kind: names for kind, names in mine.items() if names}


# --- dropping ------------------------------------------------------------------------------------

def _drop_opensearch(settings: Settings, wanted: set[str]) -> None:
    from vidsearch.plugins.opensearch.client import make_client

    found = opensearch_resources(settings, wanted)
    client = make_client(settings.opensearch)
    for index in found["opensearch indices"]:
        client.indices.delete(index=index, ignore_unavailable=True)  # its aliases go with it
    for template in found["opensearch templates"]:
        client.indices.delete_index_template(name=template, ignore=404)


def _drop_milvus(settings: Settings, wanted: set[str]) -> None:
    from vidsearch.plugins.milvus.client import make_client

    found = milvus_resources(settings, wanted)
    if not any(found.values()):
        return
    client = make_client(settings.milvus, timeout=30.0)
    try:
        # Aliases pointing at our collections, whatever their names, then our own aliases.
        for coll in found["milvus collections"]:
            for alias in _aliases(client, coll):
                client.drop_alias(alias=alias)
        for alias in found["milvus aliases"]:
            client.drop_alias(alias=alias)
        for coll in found["milvus collections"]:
            client.drop_collection(coll)
    finally:
        client.close()


def _drop_kafka(settings: Settings, wanted: set[str], wait_s: float = 20.0) -> None:
    """Topics and consumer groups; waits until the broker no longer lists the topics (deletion
    is asynchronous, and the final leftover check must not see a topic that is going away)."""
    from confluent_kafka.admin import AdminClient

    from vidsearch.connector.kafka.config import kafka_client_config

    admin = AdminClient(kafka_client_config(settings.kafka))
    groups = [g.group_id for g in admin.list_consumer_groups(request_timeout=15).result(timeout=20).valid
              if _matches(g.group_id, wanted)]
    if groups:
        for group, fut in admin.delete_consumer_groups(groups, request_timeout=15).items():
            try:
                fut.result(timeout=20)
            except Exception as exc:  # a group whose member has not timed out yet: not ours to wait for
                log.warning("kafka group %s not deleted: %s", group, exc)
    topics = kafka_topics(settings, wanted)
    if not topics:
        return
    for fut in admin.delete_topics(topics, operation_timeout=15).values():
        try:
            fut.result(timeout=30)
        except Exception as exc:
            if "UNKNOWN_TOPIC" not in str(exc):
                raise
    deadline = time.monotonic() + wait_s
    while kafka_topics(settings, wanted) and time.monotonic() < deadline:
        time.sleep(0.25)


def _drop_redis(settings: Settings, wanted: set[str]) -> None:
    import redis

    keys = redis_keys(settings, wanted)
    if keys:
        password = settings.redis.password.get_secret_value() if settings.redis.password else None
        client = redis.Redis.from_url(settings.redis.url, password=password, socket_timeout=10)
        try:
            client.delete(*keys)
        finally:
            client.close()


def drop_resources(settings: Settings, names: Iterable[str]) -> list[str]:
    """Remove everything `names` produced on the stack. Every store is attempted even when
    another fails; the failures come back as messages (the caller decides how loud to be)."""
    wanted = _variants(names)
    errors: list[str] = []
    for store, drop in (("opensearch", _drop_opensearch), ("milvus", _drop_milvus),
                        ("kafka", _drop_kafka), ("redis", _drop_redis)):
        try:
            drop(settings, wanted)
        except Exception as exc:
            errors.append(f"{store}: {type(exc).__name__}: {exc}")
    return errors
