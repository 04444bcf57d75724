"""Translate vidsearch's Kafka settings into each client's configuration: a librdkafka dict for
confluent-kafka, keyword arguments for kafka-python. Both get the same checks first, so a bad
setting fails at start-up the same way whichever client is chosen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from vidsearch.connector.kafka.errors import KafkaConfigError
from vidsearch.core.settings import KafkaSettings


def check_files(settings: KafkaSettings) -> None:
    """A missing certificate or key would otherwise show as a broker that never answers
    (kafka-python only logs the SSL error and times out bootstrapping)."""
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            raise KafkaConfigError(f"kafka.{name} = {path} does not exist; fix the path or unset it")


# Optional settings and their key in each client: (librdkafka, kafka-python). One table so the
# two translations cannot drift apart; a setting left unset is not passed at all.
OPTIONAL_KEYS: dict[str, tuple[str, str]] = {
    "sasl_mechanism": ("sasl.mechanism", "sasl_mechanism"),
    "sasl_username": ("sasl.username", "sasl_plain_username"),  # kafka-python uses "plain" names for SCRAM too
    "sasl_password": ("sasl.password", "sasl_plain_password"),
    "ssl_cafile": ("ssl.ca.location", "ssl_cafile"),
    "ssl_certfile": ("ssl.certificate.location", "ssl_certfile"),
    "ssl_keyfile": ("ssl.key.location", "ssl_keyfile"),
    "ssl_key_password": ("ssl.key.password", "ssl_password"),
}


def _optional(settings: KafkaSettings, client: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, keys in OPTIONAL_KEYS.items():
        value = getattr(settings, name)
        if value is None or value == "":
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, Path):
            value = str(value)
        out[keys[client]] = value
    return out


def kafka_client_config(settings: KafkaSettings) -> dict[str, Any]:
    """Common librdkafka producer/consumer/admin options; callers add role-specific keys (group.id, ...)."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": settings.client_id,
        "security.protocol": settings.security_protocol,
        **_optional(settings, 0),
    }
    if settings.security_protocol in ("SSL", "SASL_SSL") and not settings.ssl_check_hostname:
        conf["ssl.endpoint.identification.algorithm"] = "none"
    return conf


def kafka_python_config(settings: KafkaSettings) -> dict[str, Any]:
    """Common kafka-python KafkaConsumer/KafkaProducer keyword arguments."""
    if settings.sasl_mechanism == "OAUTHBEARER":
        # kafka-python needs a token provider object, which settings cannot express
        raise KafkaConfigError("kafka.sasl_mechanism = OAUTHBEARER needs kafka.client = confluent")
    return {
        "bootstrap_servers": [s.strip() for s in settings.bootstrap_servers.split(",") if s.strip()],
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
        "ssl_check_hostname": settings.ssl_check_hostname,
        **_optional(settings, 1),
    }
