"""Kafka failures mapped onto the error taxonomy (`vidsearch.core.errors`), the same for every client.

A broker that cannot be reached, a commit or a delivery that times out: `KafkaUnavailableError`
(infrastructure: rewind, pause, retry; nothing committed past it). Settings the client refuses
or cannot honour: `KafkaConfigError` (deployment: fail at start-up with the fix).
"""

from __future__ import annotations

from vidsearch.connector.errors import ConnectorDeploymentError
from vidsearch.core.errors import StoreUnavailableError


class KafkaUnavailableError(StoreUnavailableError):
    """Kafka (or the DLQ topic on it) did not answer or acknowledge: pause and retry."""

    def __init__(self, message: str, store: str = "kafka") -> None:
        super().__init__(store, message)


class KafkaConfigError(ConnectorDeploymentError):
    """The `kafka.*` settings cannot work with the chosen client (`kafka.client`)."""
