"""OpenSearch client built from settings (auth, TLS verification, timeouts)."""

from __future__ import annotations

from typing import Any

from opensearchpy import OpenSearch

from vidsearch.core.settings import OpenSearchSettings


def make_client(settings: OpenSearchSettings, **kwargs: Any) -> OpenSearch:
    """`kwargs` go to `OpenSearch(...)` as they are (its own signature takes `**kwargs: Any`)."""
    auth = None
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else ""
        auth = (settings.username, password)
    return OpenSearch(
        hosts=[settings.url],
        http_auth=auth,
        verify_certs=settings.verify_certs,
        ca_certs=str(settings.ca_certs) if settings.ca_certs else None,
        ssl_show_warn=settings.verify_certs,
        timeout=settings.timeout_s,
        **kwargs,
    )
