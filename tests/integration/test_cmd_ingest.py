"""`vidsearch ingest status` (and the `ingest` run it reports on), `vidsearch schema` and
`vidsearch config show`, black-box through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.command_helpers import cli, cli_json, describe, make_scope, os_alias_targets, os_client
from tests.integration.indexer_helpers import create_topics, produce
from vidsearch.ops.bench import events as ev


@pytest.mark.integration
@pytest.mark.models
def test_ingest_status_reports_lag_then_the_indexer_that_cleared_it(stack: object, unique_name: str, tmp_path: Path) -> None:
    scope = make_scope(unique_name, tmp_path, VIDSEARCH_INDEXER__BATCH_MAX_S="0.5")
    s = scope.settings
    create_topics(s, partitions=3)
    events = [(f"vid-{i}", "upsert", 1, ev.upsert(f"vid-{i}", 1, seed=i)) for i in range(9)]
    produce(s, events)

    before = cli_json(scope.env, "ingest", "status", "--json")
    assert before["topic"] == unique_name and before["group"] == f"{unique_name}-group"
    assert set(before["partitions"]) == {"0", "1", "2"} and before["total_lag"] == len(events)
    assert sum(p["end"] for p in before["partitions"].values()) == len(events)
    assert all(p["committed"] < 0 and p["lag"] == p["end"] for p in before["partitions"].values()), before
    assert before["indexers"] == []

    run = cli_json(scope.env, "ingest", "--until-idle", "3", "--json")
    assert run["indexed"] == len(events) and run["dead"] == 0 and run["sinks"] == ["milvus", "opensearch"], run

    after = cli_json(scope.env, "ingest", "status", "--json")
    assert after["total_lag"] == 0
    assert all(p["committed"] == p["end"] and p["lag"] == 0 for p in after["partitions"].values()), after
    [indexer] = after["indexers"]  # the run above left its status file in this scope's state folder
    assert indexer["stats"]["indexed"] == len(events) and indexer["stats"]["events"] == len(events)
    assert indexer["file"].endswith(".json") and unique_name in indexer["file"] and isinstance(indexer["stale"], bool)

    [index] = os_alias_targets(s)  # and the events really are in the stores
    assert os_client(s).count(index=index)["count"] == len(events)

    text = cli(scope.env, "ingest", "status")  # the human form is the same JSON, on stderr
    assert text.exit_code == 0 and '"total_lag": 0' in text.stderr, describe(text)


@pytest.mark.unit
def test_schema_is_a_json_schema_that_accepts_real_events_and_rejects_bad_ones(tmp_path: Path) -> None:
    import jsonschema  # a test dependency: an independent validator, not vidsearch's own pydantic models

    schema = cli_json({"VIDSEARCH_STACK__STATE_DIR": str(tmp_path)}, "schema")
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)  # a valid JSON Schema document
    validator = validator_cls(schema)
    assert schema["title"] == "vidsearch video event"

    upsert = json.loads(ev.upsert("clip-001", 3, seed=7))  # what the benchmarks and tests produce
    media = {"schema_version": 1, "op": "upsert", "video_id": "clip-002", "version": 1, "title": "Launch day",
             "media_uri": "/srv/videos/launch.mp4", "tags": ["space"], "language": "en"}
    delete = json.loads(ev.delete("clip-001", 4))
    for good in (upsert, media, delete):
        errors = list(validator.iter_errors(good))
        assert not errors, (good.get("video_id"), [e.message for e in errors])

    bad = {
        "unknown op": {**delete, "op": "explode"},
        "no video_id": {k: v for k, v in delete.items() if k != "video_id"},
        "path in video_id": {**delete, "video_id": "../../etc/passwd"},
        "negative version": {**delete, "version": -1},
        "schema version 2": {**delete, "schema_version": 2},
        "unknown delete field": {**delete, "title": "x"},
        "not an object": ["clip-001"],
        "tags not a list": {**media, "tags": "space"},
    }
    for why, event in bad.items():
        assert list(validator.iter_errors(event)), f"the schema accepted an event with {why}"


@pytest.mark.unit
def test_config_show_masks_secrets_and_shows_env_and_file_overrides(tmp_path: Path) -> None:
    config = tmp_path / "vidsearch.toml"
    config.write_text('[indexer]\ntopic = "from-file"\ngroup_id = "group-from-file"\n\n'
                      '[opensearch]\nusername = "admin"\npassword = "file-secret-pw"\n')
    env = {
        "VIDSEARCH_STACK__STATE_DIR": str(tmp_path / "state"),  # the CLI's log file goes there
        "VIDSEARCH_CONFIG": str(config),
        "VIDSEARCH_INDEXER__TOPIC": "from-env",  # the environment wins over the file
        "VIDSEARCH_REDIS__URL": "redis://:url-secret-pw@cache.example:6380/2",
        "VIDSEARCH_REDIS__PASSWORD": "redis-secret-pw",
        "VIDSEARCH_KAFKA__SASL_PASSWORD": "kafka-secret-pw",
        "VIDSEARCH_RETRIEVAL__API_TOKEN": "token-secret-value",
        "VIDSEARCH_MILVUS__URI": "http://milvus.example:19530/?token=uri-secret-token",
    }
    result = cli(env, "config", "show")
    assert result.exit_code == 0, describe(result)
    for secret in ("file-secret-pw", "url-secret-pw", "redis-secret-pw", "kafka-secret-pw", "token-secret-value",
                   "uri-secret-token"):
        assert secret not in result.stdout and secret not in result.stderr, secret
    shown = json.loads(result.stdout)
    assert shown["indexer"]["topic"] == "from-env" and shown["indexer"]["group_id"] == "group-from-file"
    assert shown["opensearch"]["username"] == "admin" and shown["opensearch"]["password"] == "**********"
    assert shown["redis"]["password"] == "**********" and shown["kafka"]["sasl_password"] == "**********"
    assert shown["retrieval"]["api_token"] == "**********"
    assert shown["redis"]["url"] == "redis://:***@cache.example:6380/2"
    assert "token=***" in shown["milvus"]["uri"] and shown["milvus"]["uri"].startswith("http://milvus.example:19530")

    missing = cli({**env, "VIDSEARCH_CONFIG": str(tmp_path / "nope.toml")}, "config", "show")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr, describe(missing)
    invalid = cli({**env, "VIDSEARCH_INDEXER__BATCH_MAX_EVENTS": "lots"}, "config", "show")
    assert invalid.exit_code != 0 and invalid.stdout == ""


@pytest.mark.unit
def test_a_bad_environment_variable_is_a_config_error(tmp_path: Path) -> None:
    env = {"VIDSEARCH_STACK__STATE_DIR": str(tmp_path), "VIDSEARCH_INDEXER__BATCH_MAX_EVENTS": "lots"}
    result = cli(env, "config", "show")
    assert result.exit_code == 2 and "config error" in result.stderr and "batch_max_events" in result.stderr
