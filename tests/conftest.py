"""Session fixtures: settings, the real local stack (started once), unique resource names.

Integration tests never skip when a service is missing: the `stack` fixture starts it (a no-op
when `.ci/run` or a developer already did) and fails loudly with the service's log if it cannot.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from vidsearch.core.settings import Settings, load_settings
from vidsearch.ops.stack.manager import Stack


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Stack]:
    """The real services, healthy, for the whole session."""
    stack = Stack(settings)
    stack.up()
    yield stack


@pytest.fixture(scope="session", autouse=True)
def _stop_private_milvus_lite_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Embedded catalogues under this session's tmp dirs are served by private milvus-lite
    servers that outlive their clients for `milvus.lite_idle_s`; stop them when the session ends
    (only ours: another session's servers live under another base temp dir)."""
    yield
    from vidsearch.plugins.milvus import lite

    base = str(tmp_path_factory.getbasetemp())
    for server in lite.servers():
        if server["file"].startswith(base):
            lite.stop(server["file"])


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A fresh name per test for a topic, index or collection (lowercase: OpenSearch needs it)."""
    base = "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:30]
    return f"t_{base}_{uuid.uuid4().hex[:8]}"
