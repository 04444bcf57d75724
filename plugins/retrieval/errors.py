"""Retrieval errors: a bad request (4xx) versus every store being down (503)."""

from __future__ import annotations

from vidsearch.core.errors import InfrastructureError, VidsearchError


class RetrievalError(VidsearchError):
    """Base of retrieval errors."""


class AllRoutesFailedError(RetrievalError, InfrastructureError):
    """No route could be served by any store; the caller gets 503, with each store's reason."""


def store_unavailable_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean "this store cannot answer now" (down, timing out, index missing), as
    opposed to a bug in our query, which must surface. Each backend declares its own."""
    from vidsearch.plugins.backends import unavailable_errors

    return unavailable_errors()
