"""`make_producer`: the `EventProducer` of the client `kafka.client` names."""

from __future__ import annotations

from vidsearch.connector.sources.base import EventProducer
from vidsearch.core.settings import KafkaSettings

MAX_MESSAGE_BYTES = 16 * 1024**2  # the producer's own cap; the broker's (topic's) limit still applies


def make_producer(settings: KafkaSettings, linger_ms: int = 5) -> EventProducer:
    """An idempotent, acks=all producer. Bad settings raise KafkaConfigError; with kafka-python
    an unreachable broker raises KafkaUnavailableError here (confluent connects lazily)."""
    if settings.client == "kafka-python":
        from vidsearch.connector.kafka.kafka_python import KafkaPythonProducer

        return KafkaPythonProducer(settings, linger_ms=linger_ms)
    from vidsearch.connector.kafka.confluent import ConfluentProducer

    return ConfluentProducer(settings, linger_ms=linger_ms)
