"""Settings: sources and their priority, validation, secret masking, Kafka option mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidsearch.connector.kafka.config import kafka_client_config
from vidsearch.core.errors import ConfigError
from vidsearch.core.settings import load_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("VIDSEARCH_"):
            monkeypatch.delenv(key)


def test_file_then_env_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "vidsearch.toml"
    cfg.write_text(
        '[kafka]\nbootstrap_servers = "file:1"\nclient_id = "from-file"\n'
        '[opensearch]\nurl = "https://os.example:9200"\nusername = "admin"\npassword = "hunter2"\n'
    )
    monkeypatch.setenv("VIDSEARCH_KAFKA__BOOTSTRAP_SERVERS", "env:2")
    s = load_settings(cfg)
    assert s.kafka.bootstrap_servers == "env:2"  # env beats file
    assert s.kafka.client_id == "from-file"  # file beats default
    assert s.opensearch.password is not None and s.opensearch.password.get_secret_value() == "hunter2"


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[milvus]\nuri = "./local.db"\n')
    monkeypatch.setenv("VIDSEARCH_CONFIG", str(cfg))
    assert load_settings().milvus.uri == "./local.db"


def test_secrets_are_masked_when_dumped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDSEARCH_KAFKA__SASL_PASSWORD", "s3cret-value")
    monkeypatch.setenv("VIDSEARCH_MILVUS__TOKEN", "root:Milvus-token")
    s = load_settings()
    dumped = json.dumps(s.public_dict())
    assert "s3cret-value" not in dumped and "Milvus-token" not in dumped and "**********" in dumped
    assert "s3cret-value" not in repr(s) and "s3cret-value" not in str(s.kafka)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_invalid_values_are_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[kafka]\nsecurity_protocol = "CARRIER_PIGEON"\n')
    with pytest.raises(ConfigError, match="security_protocol"):
        load_settings(cfg)
    cfg.write_text("[kafka]\nunknown_knob = 1\n")
    with pytest.raises(ConfigError, match="unknown_knob"):
        load_settings(cfg)


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValueError):
        s.kafka.bootstrap_servers = "x"  # type: ignore[misc]


def test_kafka_sasl_ssl_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDSEARCH_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("VIDSEARCH_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("VIDSEARCH_KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("VIDSEARCH_KAFKA__SASL_PASSWORD", "pw")
    monkeypatch.setenv("VIDSEARCH_KAFKA__SSL_CAFILE", "/etc/ca.pem")
    monkeypatch.setenv("VIDSEARCH_KAFKA__SSL_CHECK_HOSTNAME", "false")
    conf = kafka_client_config(load_settings().kafka)
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (conf["sasl.username"], conf["sasl.password"]) == ("svc", "pw")
    assert conf["ssl.ca.location"] == "/etc/ca.pem"
    assert conf["ssl.endpoint.identification.algorithm"] == "none"


def test_plaintext_mapping_has_no_auth_keys() -> None:
    conf = kafka_client_config(load_settings().kafka)
    assert not any(k.startswith(("sasl.", "ssl.")) for k in conf)
