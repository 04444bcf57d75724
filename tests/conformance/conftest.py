"""Fixtures of the VideoStore conformance suite: each backend against its real service, with its
own index/collection prefix, cleaned up afterwards (alias, every version, the client, and an
embedded catalogue's private server).

A backend joins by registering its class in `vidsearch.plugins.backends.BACKENDS` and adding a
`Backend` entry to `BACKENDS` below (the registry name plus how its settings reach the service);
every test of `test_video_store.py` then runs against it.

Two store fixtures: `store`, empty and private to one test (for everything that writes), and
`catalogue`, seeded once per backend and module and shared by the read-only tests (creating an
index/collection is the slow part on Milvus, ~5 s each, and reads do not need their own).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cleanup import fresh_name
from vidsearch.core.settings import Settings, load_settings
from vidsearch.core.store import VideoStore
from vidsearch.plugins.backends import open_store

from .docs import catalogue_docs

# Every model version a conformance test may create: the finalizer drops each one that exists, so
# a test never leaves an index or collection behind (tests use no other version names).
VERSIONS = ("m1", "m2", "m3")


@dataclass(frozen=True)
class Backend:
    """One conformance parameter: the registry name and how its settings reach the service."""

    id: str
    name: str  # registry name (vidsearch.plugins.backends)
    configure: Callable[[Settings, Path], Settings]  # (settings, a private temp folder)
    dead: Callable[[Settings], Settings]  # the same backend pointed at a port nobody listens on

    def settings(self, prefix: str, tmp: Path) -> Settings:
        """`load_settings()` with a unique prefix valid for both engines (lowercase for OpenSearch,
        [a-z0-9_] for Milvus), then pointed at this parameter's service."""
        base = load_settings()
        idx = base.indexer.model_copy(update={"index_prefix": prefix, "collection_prefix": prefix,
                                              "model_version": VERSIONS[0], "write_versions": ()})
        return self.configure(base.model_copy(update={"indexer": idx}), tmp)


def _milvus_uri(settings: Settings, uri: str) -> Settings:
    return settings.model_copy(update={"milvus": settings.milvus.model_copy(update={"uri": uri})})


def _dead_opensearch(settings: Settings) -> Settings:
    update = {"url": "http://127.0.0.1:1", "timeout_s": 2.0}
    return settings.model_copy(update={"opensearch": settings.opensearch.model_copy(update=update)})


BACKENDS = (
    Backend("opensearch", "opensearch", lambda s, tmp: s, _dead_opensearch),
    Backend("milvus-server", "milvus", lambda s, tmp: _milvus_uri(s, "http://127.0.0.1:19530"),
            lambda s: _milvus_uri(s, "http://127.0.0.1:1")),
    # An embedded catalogue: a milvus-lite file served by its own private server.
    Backend("milvus-file", "milvus", lambda s, tmp: _milvus_uri(s, str(tmp / "catalogue.db")),
            lambda s: _milvus_uri(s, "http://127.0.0.1:1")),
)


@pytest.fixture(scope="module", params=BACKENDS, ids=[b.id for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Module scope, so pytest runs all of one backend's tests together (one shared catalogue)."""
    return request.param


@contextlib.contextmanager
def opened(backend: Backend, settings: Settings) -> Iterator[VideoStore]:
    """The backend's store; afterwards the alias, every version in VERSIONS, the client, and an
    embedded catalogue's private server are gone (nothing left behind, nothing left running)."""
    s = open_store(backend.name, settings)
    try:
        yield s
    finally:
        errors: list[BaseException] = []
        for step in (_drop_alias, _drop_versions, lambda st: st.close()):
            try:
                step(s)
            except Exception as exc:  # noqa: BLE001 - clean up as much as possible, then report
                errors.append(exc)
        uri = settings.milvus.uri
        if backend.name == "milvus" and "://" not in uri:
            from vidsearch.plugins.milvus import lite

            lite.stop(uri)
        if errors:
            raise errors[0]


def _drop_alias(s: VideoStore) -> None:
    if s.alias_target() is not None:
        s.drop_alias()


def _drop_versions(s: VideoStore) -> None:
    for version in VERSIONS:
        if s.exists(version):
            s.drop(version)
    left = [v for v in VERSIONS if s.exists(v)]
    assert not left, f"versions left behind after drop: {left}"


@pytest.fixture
def store_settings(backend: Backend, stack: object, unique_name: str, tmp_path: Path) -> Settings:
    return backend.settings(unique_name, tmp_path)


@pytest.fixture
def store(backend: Backend, store_settings: Settings) -> Iterator[VideoStore]:
    """An empty store of its own for one test (it may create any version in VERSIONS)."""
    with opened(backend, store_settings) as s:
        yield s


@pytest.fixture(scope="module")
def catalogue(backend: Backend, stack: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VideoStore]:
    """One store per backend holding `docs.catalogue_docs()` in version "m1", refreshed. Shared:
    tests using it must only read."""
    prefix = fresh_name("conformance")  # tracked: the session's leftover check covers it
    with opened(backend, backend.settings(prefix, tmp_path_factory.mktemp("catalogue"))) as s:
        s.ensure("m1")
        docs = catalogue_docs()
        result = s.write("m1", docs)
        assert (result.written, result.stale, result.rejected) == (len(docs), 0, {}), result
        s.refresh("m1")
        yield s
