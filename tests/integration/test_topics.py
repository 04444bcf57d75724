"""The indexer's topics on the real broker: created at start-up with the settings' partitions and
`min.insync.replicas`, left alone when they exist; a cluster that refuses the settings is a
deployment error (exit 2 with the fix), brokers that do not answer are an outage."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from tests.integration.command_helpers import cli, describe, scope_env
from tests.integration.indexer_helpers import indexer_settings
from vidsearch.connector.kafka.config import kafka_client_config
from vidsearch.connector.kafka.errors import KafkaConfigError, KafkaUnavailableError
from vidsearch.connector.kafka.topics import ensure_topics, required_topics
from vidsearch.core.errors import Handling, classify
from vidsearch.core.settings import Settings

pytestmark = pytest.mark.integration


def _kafka(s: Settings, **update: object) -> Settings:
    return s.model_copy(update={"kafka": s.kafka.model_copy(update=update)})


def _described(s: Settings, topic: str) -> tuple[int, str]:
    admin = AdminClient(kafka_client_config(s.kafka))
    partitions = len(admin.list_topics(topic=topic, timeout=10).topics[topic].partitions)
    [future] = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    return partitions, future.result(timeout=10)["min.insync.replicas"].value


def test_missing_topics_are_created_with_the_settings_and_existing_ones_left_alone(stack, settings: Settings, unique_name: str,
                                                                                  tmp_path: Path) -> None:
    s = _kafka(indexer_settings(settings, unique_name, tmp_path), topic_partitions=2, min_insync_replicas=1)
    assert required_topics(s) == [unique_name, f"{unique_name}.dlq"]
    assert ensure_topics(s) == {unique_name: "created", f"{unique_name}.dlq": "created"}
    assert _described(s, unique_name) == (2, "1") and _described(s, f"{unique_name}.dlq") == (2, "1")
    again = _kafka(s, topic_partitions=5)  # a second indexer with other settings changes nothing
    assert ensure_topics(again) == {unique_name: "exists", f"{unique_name}.dlq": "exists"}
    assert _described(s, unique_name)[0] == 2


def test_a_replication_factor_the_cluster_cannot_honour_is_a_deployment_error(stack, settings: Settings, unique_name: str,
                                                                              tmp_path: Path) -> None:
    s = _kafka(indexer_settings(settings, unique_name, tmp_path), replication_factor=3, min_insync_replicas=2)
    with pytest.raises(KafkaConfigError) as caught:  # the local stack has one broker
        ensure_topics(s)
    assert classify(caught.value) is Handling.FAIL_AT_START
    assert "INVALID_REPLICATION_FACTOR" in str(caught.value) and "kafka.replication_factor" in str(caught.value)
    assert unique_name not in AdminClient(kafka_client_config(s.kafka)).list_topics(timeout=10).topics


def test_ingest_creates_its_topics_or_stops_before_consuming_with_the_fix(stack, settings: Settings, unique_name: str,
                                                                         tmp_path: Path) -> None:
    env = scope_env(unique_name, tmp_path) | {"VIDSEARCH_INDEXER__SINKS": '["milvus"]', "VIDSEARCH_ENCODERS__ASR": "false",
                                              "VIDSEARCH_ENCODERS__OCR": "false"}
    refused = cli({**env, "VIDSEARCH_KAFKA__REPLICATION_FACTOR": "3"}, "ingest", "--until-idle", "1", "--json")
    assert refused.exit_code == 2, describe(refused)  # a deployment error, before anything is consumed
    assert "kafka.replication_factor" in refused.output
    ran = cli(env, "ingest", "--until-idle", "1", "--json")
    assert ran.exit_code == 0, describe(ran)
    topics = AdminClient(kafka_client_config(settings.kafka)).list_topics(timeout=10).topics
    assert {unique_name, f"{unique_name}.dlq"} <= set(topics)


def test_brokers_that_do_not_answer_are_an_outage(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = _kafka(settings, bootstrap_servers=f"127.0.0.1:{port}")
    with pytest.raises(KafkaUnavailableError) as caught:
        ensure_topics(s, timeout_s=2.0)
    assert classify(caught.value) is Handling.PAUSE_AND_RETRY


def test_copy_events_get_their_topic_only_with_the_ingest_time_check(settings: Settings) -> None:
    on = settings.model_copy(update={"copies": settings.copies.model_copy(update={"check_at_ingest": True, "topic": "c.copies"})})
    assert required_topics(on) == [settings.indexer.topic, settings.indexer.dlq_topic, "c.copies"]
    assert required_topics(settings) == [settings.indexer.topic, settings.indexer.dlq_topic]


def test_min_insync_replicas_above_the_replication_factor_is_refused_when_settings_load() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="cannot exceed"):
        Settings().kafka.model_validate({"replication_factor": 2, "min_insync_replicas": 3})
