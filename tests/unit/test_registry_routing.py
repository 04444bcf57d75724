"""Live ingestion asks Redis where to write: Redis not answering is an outage (pause and retry),
never the events' fault (dead letter). Against a real redis-py client and a closed port."""

from __future__ import annotations

import socket

import pytest

from vidsearch.core.errors import Handling, classify
from vidsearch.core.settings import Settings
from vidsearch.ops.registry.routing import RegistryUnavailableError, registry_routing

pytestmark = pytest.mark.unit


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_registry_is_an_outage_not_bad_data() -> None:
    settings = Settings().model_copy(update={"redis": Settings().redis.model_copy(update={"url": f"redis://127.0.0.1:{_closed_port()}/0"})})
    versions, model = registry_routing(settings)
    with pytest.raises(RegistryUnavailableError) as caught:
        versions()
    assert classify(caught.value) is Handling.PAUSE_AND_RETRY
    assert caught.value.store == "registry" and "ConnectionError" in str(caught.value)
    with pytest.raises(RegistryUnavailableError):
        model()
