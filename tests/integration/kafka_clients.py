"""Run a Kafka test once per supported client (`kafka.client`): import the `kafka_client`
fixture into a test module and build its settings with `with_client`."""

from __future__ import annotations

import pytest

from vidsearch.core.settings import Settings

KAFKA_CLIENTS = ("confluent", "kafka-python")


@pytest.fixture(params=KAFKA_CLIENTS)
def kafka_client(request: pytest.FixtureRequest) -> str:
    return request.param


def with_client(settings: Settings, client: str) -> Settings:
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"client": client})})
