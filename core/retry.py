"""Retry policy shared by the sinks: exponential backoff with jitter on transient failures, then
StoreUnavailableError so the consumer pauses instead of spinning."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from vidsearch.core.errors import StoreUnavailableError

T = TypeVar("T")


def with_retries(store: str, attempts: int, max_wait_s: float, is_transient: Callable[[BaseException], bool], fn: Callable[[], T]) -> T:
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=0.1, max=max_wait_s),
        retry=retry_if_exception(is_transient),
        reraise=False,
    )
    try:
        return retrying(fn)
    except RetryError as exc:
        cause = exc.last_attempt.exception()
        raise StoreUnavailableError(store, f"no acknowledgement after {attempts} attempts: {cause}") from cause
