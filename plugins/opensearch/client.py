"""OpenSearch client built from settings (auth, TLS verification, timeouts)."""

from __future__ import annotations

from typing import Any

import orjson
from opensearchpy import OpenSearch
from opensearchpy.exceptions import SerializationError
from opensearchpy.serializer import JSONSerializer

from vidsearch.core.settings import OpenSearchSettings

_ORJSON_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class FastJSONSerializer(JSONSerializer):
    """opensearch-py's serializer on orjson. Serialising `_bulk` bodies with the standard `json`
    module was a third of the write stage's CPU (vectors are thousands of floats per document),
    time the GIL takes away from encoding the next batch. float32 arrays come out in their
    shortest exact form (`0.754`, not `0.7540000081062317`), so bodies are also smaller for the
    cluster to parse. What orjson refuses (an int beyond 64 bits, a type it does not know that
    `default` cannot map) falls back to the standard serializer, whose behaviour and errors are
    the ones callers already handle."""

    def dumps(self, data: Any) -> Any:
        if isinstance(data, str):
            return data
        try:
            return orjson.dumps(data, default=self.default, option=_ORJSON_OPTS).decode("utf-8")
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            return super().dumps(data)

    def loads(self, s: str) -> Any:
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError as exc:
            raise SerializationError(s, exc) from exc


def make_client(settings: OpenSearchSettings, **kwargs: Any) -> OpenSearch:
    """`kwargs` go to `OpenSearch(...)` as they are (its own signature takes `**kwargs: Any`),
    except `max_retries`, which counts retries on top of one per further node: a client that
    knows several nodes always tries the next one when a node stops answering (the transport
    marks that node dead for a while), even where the caller wants no retry of its own."""
    urls = settings.urls
    max_retries = int(kwargs.pop("max_retries", 3)) + len(urls) - 1
    auth = None
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else ""
        auth = (settings.username, password)
    return OpenSearch(
        hosts=urls,
        max_retries=max_retries,
        http_auth=auth,
        verify_certs=settings.verify_certs,
        ca_certs=str(settings.ca_certs) if settings.ca_certs else None,
        ssl_show_warn=settings.verify_certs,
        timeout=settings.timeout_s,
        serializer=kwargs.pop("serializer", FastJSONSerializer()),
        **kwargs,
    )
