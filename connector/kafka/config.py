"""Translate vidsearch's Kafka settings into a librdkafka (confluent-kafka) config dict."""

from __future__ import annotations

from typing import Any

from vidsearch.core.settings import KafkaSettings


def kafka_client_config(settings: KafkaSettings) -> dict[str, Any]:
    """Common producer/consumer/admin options; callers add role-specific keys (group.id, ...)."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": settings.client_id,
        "security.protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        conf["sasl.mechanism"] = settings.sasl_mechanism
    if settings.sasl_username is not None:
        conf["sasl.username"] = settings.sasl_username
    if settings.sasl_password is not None:
        conf["sasl.password"] = settings.sasl_password.get_secret_value()
    if settings.ssl_cafile:
        conf["ssl.ca.location"] = str(settings.ssl_cafile)
    if settings.ssl_certfile:
        conf["ssl.certificate.location"] = str(settings.ssl_certfile)
    if settings.ssl_keyfile:
        conf["ssl.key.location"] = str(settings.ssl_keyfile)
    if settings.ssl_key_password is not None:
        conf["ssl.key.password"] = settings.ssl_key_password.get_secret_value()
    if settings.security_protocol in ("SSL", "SASL_SSL") and not settings.ssl_check_hostname:
        conf["ssl.endpoint.identification.algorithm"] = "none"
    return conf
