"""Milvus client built from settings: the same code serves milvus-lite (a local file or its
server mode) and Milvus standalone/distributed, by URI alone."""

from __future__ import annotations

from collections.abc import Iterator

from pymilvus import MilvusClient

from vidsearch.ops.settings import MilvusSettings


def is_embedded(uri: str) -> bool:
    """A URI without a network scheme is a milvus-lite database file."""
    return not uri.startswith(("http://", "https://", "tcp://", "grpc://", "unix:"))


def make_client(settings: MilvusSettings, timeout: float | None = 10.0, dedicated: bool = False) -> MilvusClient:
    """`dedicated`: a channel of its own. pymilvus otherwise shares one channel per address, and
    after a server restart a shared channel whose recovery failed stays broken for every client;
    long-lived writers (the sink) need a reconnect that really reconnects."""
    token = settings.token.get_secret_value() if settings.token else ""
    kwargs: dict[str, object] = {"uri": settings.uri, "token": token, "timeout": timeout, "dedicated": dedicated}
    kwargs["grpc_options"] = {
        "grpc.keepalive_time_ms": settings.keepalive_ms,
        "grpc.keepalive_permit_without_calls": False,
    }
    if not is_embedded(settings.uri):
        kwargs["db_name"] = settings.db_name
    return MilvusClient(**kwargs)


def iter_rows(client: MilvusClient, collection: str, fields: list[str], batch_size: int = 1000) -> Iterator[dict]:
    """Every row of a collection (query_iterator: no offset/limit ceiling), closing the iterator."""
    it = client.query_iterator(collection, batch_size=batch_size, filter="", output_fields=fields)
    try:
        while batch := it.next():
            yield from batch
    finally:
        it.close()
