"""The two Kafka clients: settings mapping, start-up checks and commit-error classification
(pure logic; the clients against the real broker are in tests/integration/test_kafka.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from kafka import errors as kerr

from vidsearch.connector.kafka import confluent, kafka_python
from vidsearch.connector.kafka.config import kafka_python_config
from vidsearch.connector.kafka.errors import KafkaConfigError, KafkaUnavailableError
from vidsearch.connector.sources.kafka import KafkaSource, source_class
from vidsearch.core.errors import (
    ConfigError,
    DeploymentError,
    Handling,
    InfrastructureError,
    classify,
)
from vidsearch.core.settings import load_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("VIDSEARCH_"):
            monkeypatch.delenv(key)


def test_client_setting_defaults_to_confluent_and_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().kafka.client == "confluent"
    monkeypatch.setenv("VIDSEARCH_KAFKA__CLIENT", "kafka-python")
    assert load_settings().kafka.client == "kafka-python"
    assert source_class("kafka-python") is kafka_python.KafkaPythonSource
    assert source_class("confluent") is confluent.ConfluentSource
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[kafka]\nclient = "librdkafka"\n')
    monkeypatch.delenv("VIDSEARCH_KAFKA__CLIENT")
    with pytest.raises(ConfigError, match="client"):
        load_settings(cfg)


def test_kafka_python_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDSEARCH_KAFKA__BOOTSTRAP_SERVERS", "a:9092, b:9093")
    monkeypatch.setenv("VIDSEARCH_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("VIDSEARCH_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("VIDSEARCH_KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("VIDSEARCH_KAFKA__SASL_PASSWORD", "pw")
    monkeypatch.setenv("VIDSEARCH_KAFKA__SSL_CAFILE", "/etc/ca.pem")
    monkeypatch.setenv("VIDSEARCH_KAFKA__SSL_KEY_PASSWORD", "kp")
    monkeypatch.setenv("VIDSEARCH_KAFKA__SSL_CHECK_HOSTNAME", "false")
    conf = kafka_python_config(load_settings().kafka)
    assert conf["bootstrap_servers"] == ["a:9092", "b:9093"]
    assert (conf["security_protocol"], conf["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (conf["sasl_plain_username"], conf["sasl_plain_password"]) == ("svc", "pw")
    assert (conf["ssl_cafile"], conf["ssl_password"], conf["ssl_check_hostname"]) == ("/etc/ca.pem", "kp", False)


def test_oauthbearer_needs_confluent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDSEARCH_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("VIDSEARCH_KAFKA__SASL_MECHANISM", "OAUTHBEARER")
    with pytest.raises(DeploymentError, match="kafka.client = confluent"):
        kafka_python_config(load_settings().kafka)


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_a_missing_certificate_fails_at_start_up(client: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked before any connection: kafka-python would only log it and time out bootstrapping."""
    monkeypatch.setenv("VIDSEARCH_KAFKA__CLIENT", client)
    monkeypatch.setenv("VIDSEARCH_KAFKA__SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("VIDSEARCH_KAFKA__SSL_CAFILE", str(tmp_path / "missing-ca.pem"))
    with pytest.raises(KafkaConfigError, match="ssl_cafile") as info:
        KafkaSource(load_settings())
    assert classify(info.value) is Handling.FAIL_AT_START


def test_confluent_commit_errors() -> None:
    for code in (KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID, KafkaError._ASSIGNMENT_LOST):
        assert confluent.is_rebalance(KafkaException(KafkaError(code)))
    for code in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError.COORDINATOR_NOT_AVAILABLE):
        assert not confluent.is_rebalance(KafkaException(KafkaError(code)))
    assert not confluent.is_rebalance(RuntimeError("x"))


def test_kafka_python_commit_errors() -> None:
    for exc in (kerr.CommitFailedError(), kerr.RebalanceInProgressError(), kerr.IllegalGenerationError(), kerr.UnknownMemberIdError()):
        assert kafka_python.is_rebalance(exc)
    for exc in (kerr.KafkaTimeoutError(), kerr.CoordinatorNotAvailableError(), kerr.KafkaConnectionError()):
        assert not kafka_python.is_rebalance(exc)


def test_kafka_python_construction_errors_map_to_the_taxonomy() -> None:
    with pytest.raises(KafkaConfigError) as bad, kafka_python.translated("consumer"):
        raise kerr.KafkaConfigurationError("Unrecognized configs: {'x'}")
    with pytest.raises(KafkaUnavailableError) as down, kafka_python.translated("consumer"):
        raise kerr.KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:1")
    assert isinstance(bad.value, DeploymentError) and isinstance(down.value, InfrastructureError)
    assert down.value.store == "kafka"
