"""Milvus client built from settings: the same code serves milvus-lite (a local file or its
server mode) and Milvus standalone/distributed, by URI alone.

An embedded URI (a path, `./x.db`) names a milvus-lite catalogue folder; the client connects to
that catalogue's private server (`lite.endpoint`, shared by every process that opens the
catalogue) instead of serving it inside this process, which would lock out every other process.

A collection is `released` whenever its server restarted (milvus-lite always reopens a catalogue
released), so the client loads a released collection and retries once on any read; every reader
(retriever, re-embedding, NCL jobs) gets that without knowing about it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pymilvus import MilvusClient
from pymilvus.client.types import LoadState
from pymilvus.exceptions import MilvusException

from vidsearch.core.settings import MilvusSettings


def is_embedded(uri: str) -> bool:
    """A URI without a network scheme is a milvus-lite database file."""
    return not uri.startswith(("http://", "https://", "tcp://", "grpc://", "unix:"))


def is_not_loaded(exc: BaseException) -> bool:
    """Milvus (`collection not loaded`) and milvus-lite (`... in state 'released'; call load()`)."""
    msg = str(getattr(exc, "message", "") or exc).lower()
    return isinstance(exc, MilvusException) and ("not loaded" in msg or "released" in msg or "call load()" in msg)


class LoadingMilvusClient(MilvusClient):
    """A MilvusClient whose reads load a released collection, then retry once."""

    def _read(self, method: str, collection_name: str, *args: Any, **kwargs: Any) -> Any:
        call = getattr(super(), method)
        try:
            return call(collection_name, *args, **kwargs)
        except MilvusException as exc:
            if not is_not_loaded(exc):
                raise
            self.load_collection(collection_name)
            return call(collection_name, *args, **kwargs)

    def search(self, collection_name: str, *args: Any, **kwargs: Any) -> Any:
        return self._read("search", collection_name, *args, **kwargs)

    def hybrid_search(self, collection_name: str, *args: Any, **kwargs: Any) -> Any:
        return self._read("hybrid_search", collection_name, *args, **kwargs)

    def query(self, collection_name: str, *args: Any, **kwargs: Any) -> Any:
        return self._read("query", collection_name, *args, **kwargs)

    def get(self, collection_name: str, *args: Any, **kwargs: Any) -> Any:
        return self._read("get", collection_name, *args, **kwargs)

    def query_iterator(self, collection_name: str, *args: Any, **kwargs: Any) -> Any:
        return self._read("query_iterator", collection_name, *args, **kwargs)

    def ensure_loaded(self, collection_name: str) -> None:
        """Load the collection (or alias) when it exists and is released."""
        if self.get_load_state(collection_name).get("state") == LoadState.NotLoad:
            self.load_collection(collection_name)


def make_client(settings: MilvusSettings, timeout: float | None = 10.0, dedicated: bool = False) -> LoadingMilvusClient:
    """`dedicated`: a channel of its own. pymilvus otherwise shares one channel per address, and
    after a server restart a shared channel whose recovery failed stays broken for every client;
    long-lived writers (the sink) need a reconnect that really reconnects."""
    token = settings.token.get_secret_value() if settings.token else ""
    uri = settings.uri
    if is_embedded(uri):
        from vidsearch.plugins.milvus.lite import endpoint

        uri = endpoint(uri, idle_s=settings.lite_idle_s)
    kwargs: dict[str, object] = {"uri": uri, "token": token, "timeout": timeout, "dedicated": dedicated}
    kwargs["grpc_options"] = {
        "grpc.keepalive_time_ms": settings.keepalive_ms,
        "grpc.keepalive_permit_without_calls": False,
    }
    kwargs["db_name"] = settings.db_name
    return LoadingMilvusClient(**kwargs)


def iter_rows(client: MilvusClient, collection: str, fields: list[str], batch_size: int = 1000) -> Iterator[dict]:
    """Every row of a collection (query_iterator: no offset/limit ceiling), closing the iterator."""
    it = client.query_iterator(collection, batch_size=batch_size, filter="", output_fields=fields)
    try:
        while batch := it.next():
            yield from batch
    finally:
        it.close()


def close_quietly(client: Any, owner: str) -> None:
    """Close a dropped channel's client; closing a broken channel may fail, and it is replaced
    anyway, so a failure is only logged."""
    if client is None:
        return
    try:
        client.close()
    except Exception as exc:  # noqa: BLE001 - see the docstring
        logging.getLogger(__name__).debug("%s: closing a dropped client failed: %s", owner, exc)
