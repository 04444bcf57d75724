"""Session fixtures: settings, the real local stack (started once), unique resource names.

Integration tests never skip when a service is missing: the `stack` fixture starts it (a no-op
when `.ci/run` or a developer already did) and fails loudly with the service's log if it cannot.

The stack is shared (other sessions, developers), so whatever a test creates there is named by
`unique_name` / `tests.cleanup.fresh_name` and removed after the test; when the session ends,
anything still carrying this session's names is reported as an error (and then removed).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator

import pytest

from tests.cleanup import CREATED, SESSION, drop_resources, fresh_name, session_leftovers
from vidsearch.core.settings import Settings, load_settings
from vidsearch.ops.stack.manager import Stack

_STACK_USED: list[Settings] = []  # set once the `stack` fixture ran: only then is there anything to check
# opensearch-py's trace logger writes every request as a curl line at INFO: thousands of lines
# in a failure report that hide the failure itself.
logging.getLogger("opensearchpy.trace").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Stack]:
    """The real services, healthy, for the whole session."""
    stack = Stack(settings)
    stack.up()
    _STACK_USED.append(settings)
    yield stack


@pytest.fixture(scope="session", autouse=True)
def _no_leftovers_on_the_stack() -> Iterator[None]:
    """Runs last: every test cleaned up after itself, so nothing named by this session remains.
    Whatever does remain is removed, then reported as an error of the session's last test."""
    yield
    if not _STACK_USED or not CREATED:
        return
    settings = _STACK_USED[0]
    gc.collect()  # a client handle a test leaked (in a reference cycle) goes now, not mid-check
    # Kafka lists a deleted topic for a moment: look again before calling it a leftover.
    for _ in range(3):
        left = session_leftovers(settings)
        if not left:
            return
        time.sleep(2.0)
    errors = drop_resources(settings, CREATED)
    pytest.fail(f"session {SESSION} left these on the shared stack (now removed{'; ' + '; '.join(errors) if errors else ''}): {left}",
                pytrace=False)


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
def unique_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh name per test for a topic, index or collection (lowercase: OpenSearch needs it).

    After the test (and after every fixture built on this one) whatever the name produced on
    the stack is dropped: indices, templates, collections, aliases, topics, groups, Redis keys."""
    name = fresh_name(request.node.name)
    settings: Settings | None = request.getfixturevalue("settings") if "stack" in request.fixturenames else None
    yield name
    if settings is not None:
        errors = drop_resources(settings, [name])
        assert not errors, f"cleaning up {name}: {errors}"
