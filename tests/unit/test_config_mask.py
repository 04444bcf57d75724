"""`vidsearch config show` masks credentials that are written into URLs, not only SecretStr fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidsearch.core.settings import mask_url_credentials

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cr3t@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("http://admin:hunter2@opensearch:9200", "http://admin:***@opensearch:9200"),
        ("https://u:p%40ss@h:9200/base?x=1", "https://u:***@h:9200/base?x=1"),
        ("redis://:p@ss@host:6379", "redis://:***@host:6379"),  # an unescaped @ in the password
        ("rediss://host:6380/0?password=abc&ssl_cert_reqs=none", "rediss://host:6380/0?password=***&ssl_cert_reqs=none"),
        ("http://[::1:9200", "http://[::1:9200"),  # malformed, nothing to mask: unchanged, no crash
        ("http://u:pw@[::1:9200", "http://u:***@[::1:9200"),  # malformed, still masked
    ],
)
def test_url_passwords_are_masked(url: str, masked: str) -> None:
    assert mask_url_credentials(url) == masked


@pytest.mark.parametrize("value", ["http://127.0.0.1:9200", "redis://user@host:6379/0", "127.0.0.1:9092", "./local.db",
                                   "vidsearch-videos", "http://h/p?q=cats"])
def test_values_without_a_password_are_unchanged(value: str) -> None:
    assert mask_url_credentials(value) == value


def test_nested_structures_are_walked() -> None:
    data = {"a": {"b": ["redis://:x@h:1/0", 3, None]}, "c": True}
    assert mask_url_credentials(data) == {"a": {"b": ["redis://:***@h:1/0", 3, None]}, "c": True}


def test_config_show_prints_no_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidsearch.ops.cli.main import app

    monkeypatch.delenv("VIDSEARCH_CONFIG", raising=False)
    env = {
        "VIDSEARCH_REDIS__URL": "redis://:s3cr3t-redis@127.0.0.1:6379/0",
        "VIDSEARCH_OPENSEARCH__URL": "http://admin:s3cr3t-os@127.0.0.1:9200",
        "VIDSEARCH_OPENSEARCH__PASSWORD": "s3cr3t-field",
        "VIDSEARCH_MILVUS__URI": "http://root:s3cr3t-milvus@127.0.0.1:19530",
        "VIDSEARCH_STACK__STATE_DIR": str(tmp_path),
    }
    result = CliRunner().invoke(app, ["config", "show"], env=env)
    assert result.exit_code == 0, result.output
    assert "s3cr3t" not in result.output
    shown = json.loads(result.output)
    assert shown["redis"]["url"] == "redis://:***@127.0.0.1:6379/0"
    assert shown["opensearch"]["url"] == "http://admin:***@127.0.0.1:9200"
    assert shown["milvus"]["uri"] == "http://root:***@127.0.0.1:19530"
