"""`vidsearch models register|list|promote|rollback` and `vidsearch reembed status`, black-box:
the commands against a real Redis registry, a real Celery worker subprocess and the real
OpenSearch and Milvus aliases of a throwaway catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.command_helpers import (
    MODEL_VERSION,
    celery_worker,
    cli,
    cli_json,
    describe,
    load_synthetic,
    make_model,
    make_scope,
    milvus_alias_target,
    os_alias_targets,
    os_client,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.models, pytest.mark.slow]
N = 40


def test_register_promote_status_rollback_move_the_registry_and_both_aliases(stack: object, unique_name: str,
                                                                              tmp_path: Path) -> None:
    scope = make_scope(unique_name, tmp_path, VIDSEARCH_REEMBED__CHUNKS="2", VIDSEARCH_REEMBED__GATE_QUERIES="3",
                       VIDSEARCH_REEMBED__MIN_OVERLAP="0")
    s = scope.settings
    prefix, coll_prefix = s.indexer.index_prefix, s.indexer.collection_prefix
    ids = load_synthetic(s, N)
    source_index, source_coll = f"{prefix}-{MODEL_VERSION}", f"{coll_prefix}_{MODEL_VERSION}"
    assert os_alias_targets(s) == [source_index] and milvus_alias_target(s) == source_coll

    before = cli_json(scope.env, "models", "list", "--json")
    assert before["current"] == MODEL_VERSION and before["previous"] is None
    assert [m["id"] for m in before["models"]] == [MODEL_VERSION] and before["writing"] == [MODEL_VERSION]

    # register: the card gives the id; a folder without one is refused with exit 2
    target = f"{unique_name}-m2"
    entry = cli_json(scope.env, "models", "register", str(make_model(tmp_path / "model", target)), "--json")
    assert entry["id"] == target and entry["kind"] == "balanced" and entry["path"] == str((tmp_path / "model").resolve())
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    refused = cli(scope.env, "models", "register", str(empty))
    assert refused.exit_code == 2 and "card.json" in refused.stderr, describe(refused)
    listed = cli_json(scope.env, "models", "list", "--json")
    assert [m["id"] for m in listed["models"]] == [MODEL_VERSION, target] and listed["current"] == MODEL_VERSION

    # nothing to roll back to yet; an unknown version cannot be promoted
    assert cli(scope.env, "models", "rollback").exit_code == 2
    unknown = cli(scope.env, "models", "promote", "no-such-version")
    assert unknown.exit_code == 2 and "unknown model version" in unknown.stderr, describe(unknown)

    worker = celery_worker(scope, f"{unique_name}-w")
    try:
        job = cli_json(scope.env, "models", "promote", target, "--json")
        assert job["source"] == MODEL_VERSION and job["target"] == target and job["total"] == N and job["chunks"] == 2
        # the target is written by live ingestion from now on
        assert cli_json(scope.env, "models", "list", "--json")["writing"] == [MODEL_VERSION, target]

        def finished() -> dict | None:
            st = cli_json(scope.env, "reembed", "status", "--json")
            return st if st["state"] in ("swapped", "failed") else None

        status = wait_for(finished, 240, f"job {job['id']} to swap", interval_s=1.0)
    finally:
        worker.terminate()
        worker.wait(30)
    assert status["state"] == "swapped", status
    assert status["id"] == job["id"] and status["source"] == MODEL_VERSION and status["target"] == target
    assert status["done"] == status["total"] == N and status["failed_videos"] == 0 and status["failed_ids"] == []
    assert status["eta_s"] == 0.0 and status["rate_vps"] > 0 and status["finished_at"] >= status["started_at"]
    assert status["head_only"] is True and "counts equal (40)" in status["reason"]
    assert status["report"]["gate"]["passed"] is True and status["report"]["gate"]["target_count"] == N
    assert cli_json(scope.env, "reembed", "status", job["id"], "--json")["state"] == "swapped"  # by id too
    text = cli(scope.env, "reembed", "status")
    assert text.exit_code == 0 and f"{job['id']} {MODEL_VERSION} -> {target}: swapped {N}/{N}" in text.stderr, describe(text)

    # the aliases moved on both stores, onto complete copies of the catalogue
    target_index, target_coll = f"{prefix}-{target}", f"{coll_prefix}_{target.replace('-', '_')}"
    assert os_alias_targets(s) == [target_index] and milvus_alias_target(s) == target_coll
    client = os_client(s)
    client.indices.refresh(index=target_index)
    assert client.count(index=prefix)["count"] == N
    hit = client.search(index=prefix, body={"query": {"ids": {"values": [ids[0]]}}, "_source": ["model_version"]})
    assert hit["hits"]["hits"][0]["_source"]["model_version"] == target
    promoted = cli_json(scope.env, "models", "list", "--json")
    assert promoted["current"] == target and promoted["previous"] == MODEL_VERSION
    assert promoted["writing"] == [target, MODEL_VERSION]  # the old version kept warm for a rollback

    back = cli_json(scope.env, "models", "rollback", "--json")
    assert back["current"] == MODEL_VERSION and back["previous"] == target
    assert os_alias_targets(s) == [source_index] and milvus_alias_target(s) == source_coll
    after = cli_json(scope.env, "models", "list", "--json")
    assert after["current"] == MODEL_VERSION and after["previous"] == target and after["writing"] == [MODEL_VERSION, target]
    assert client.count(index=prefix)["count"] == N
