"""Translate vidsearch's Kafka settings into each client's configuration: a librdkafka dict for
confluent-kafka, keyword arguments for kafka-python. Both get the same checks first, so a bad
setting fails at start-up the same way whichever client is chosen."""

from __future__ import annotations

from typing import Any

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


def kafka_client_config(settings: KafkaSettings) -> dict[str, Any]:
    """Common librdkafka producer/consumer/admin options; callers add role-specific keys (group.id, ...)."""
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


def kafka_python_config(settings: KafkaSettings) -> dict[str, Any]:
    """Common kafka-python KafkaConsumer/KafkaProducer keyword arguments."""
    if settings.sasl_mechanism == "OAUTHBEARER":
        # kafka-python needs a token provider object, which settings cannot express
        raise KafkaConfigError("kafka.sasl_mechanism = OAUTHBEARER needs kafka.client = confluent")
    conf: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in settings.bootstrap_servers.split(",") if s.strip()],
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
        "ssl_check_hostname": settings.ssl_check_hostname,
    }
    if settings.sasl_mechanism:
        conf["sasl_mechanism"] = settings.sasl_mechanism
    if settings.sasl_username is not None:  # kafka-python uses the "plain" names for SCRAM too
        conf["sasl_plain_username"] = settings.sasl_username
    if settings.sasl_password is not None:
        conf["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    if settings.ssl_cafile:
        conf["ssl_cafile"] = str(settings.ssl_cafile)
    if settings.ssl_certfile:
        conf["ssl_certfile"] = str(settings.ssl_certfile)
    if settings.ssl_keyfile:
        conf["ssl_keyfile"] = str(settings.ssl_keyfile)
    if settings.ssl_key_password is not None:
        conf["ssl_password"] = settings.ssl_key_password.get_secret_value()
    return conf
