"""The topics the indexer reads and writes, created at start-up when they are missing.

Without its dead-letter topic the indexer cannot set a bad event aside, so every delivery would
time out and the batch would be retried forever; a producer that relies on the broker's
auto-creation gets one partition and replication 1. The indexer therefore creates, before it
consumes, whichever of the event topic, the dead-letter topic and (with the ingest-time copy
check) the copy-event topic do not exist, with the partitions, replication factor and
`min.insync.replicas` of the `kafka.*` settings. Existing topics are never altered: one whose
replication is below the settings' is reported in the log, and left to its operator.

Uses librdkafka's admin client whichever `kafka.client` consumes (as `ingest status` does): both
are installed, and kafka-python's admin API differs between its versions.
"""

from __future__ import annotations

import logging

from vidsearch.connector.kafka.config import kafka_client_config
from vidsearch.connector.kafka.errors import KafkaConfigError, KafkaUnavailableError
from vidsearch.core.settings import Settings

log = logging.getLogger(__name__)

# Broker answers that mean the settings cannot work here (a fix in the deployment), not an outage.
_REFUSALS = ("INVALID_REPLICATION_FACTOR", "INVALID_PARTITIONS", "INVALID_CONFIG", "POLICY_VIOLATION",
             "TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED", "INVALID_TOPIC_EXCEPTION")


def required_topics(settings: Settings) -> list[str]:
    topics = [settings.indexer.topic, settings.indexer.dlq_topic]
    if settings.copies.check_at_ingest:
        topics.append(settings.copies.topic)
    return list(dict.fromkeys(topics))


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> dict[str, str]:
    """{topic: "created" | "exists"}. Raises KafkaUnavailableError when the brokers do not answer
    and KafkaConfigError when they refuse the settings (e.g. a replication factor above the
    number of brokers)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    cfg = settings.kafka
    wanted = required_topics(settings)
    admin = AdminClient({**kafka_client_config(cfg), "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailableError(f"cannot list topics: {exc}") from exc
    out: dict[str, str] = {}
    for name in wanted:
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None:
            continue
        out[name] = "exists"
        replicas = min((len(p.replicas) for p in topic.partitions.values()), default=0)
        if replicas < cfg.replication_factor:
            log.warning("topic has fewer replicas than kafka.replication_factor topic=%s replicas=%s wanted=%s",
                        name, replicas, cfg.replication_factor)
    missing = [t for t in wanted if t not in out]
    if not missing:
        return out
    new = [NewTopic(t, num_partitions=cfg.topic_partitions, replication_factor=cfg.replication_factor,
                    config={"min.insync.replicas": str(cfg.min_insync_replicas)}) for t in missing]
    for name, future in admin.create_topics(new, operation_timeout=timeout_s, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s + 5)
        except KafkaException as exc:
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            code = err.name() if err is not None else ""
            if code == "TOPIC_ALREADY_EXISTS":  # another indexer made it meanwhile
                out[name] = "exists"
                continue
            if code in _REFUSALS:
                raise KafkaConfigError(f"Kafka refused to create topic {name!r} ({code}: {err.str() if err else exc}); "
                                       "check kafka.topic_partitions, kafka.replication_factor and "
                                       "kafka.min_insync_replicas against the cluster") from exc
            raise KafkaUnavailableError(f"creating topic {name!r} failed: {exc}") from exc
        out[name] = "created"
        log.info("topic created topic=%s partitions=%s replication_factor=%s min_insync_replicas=%s",
                 name, cfg.topic_partitions, cfg.replication_factor, cfg.min_insync_replicas)
    return out
