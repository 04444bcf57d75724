"""The root of every vidsearch error, and the three classes that decide what happens next.

Every error vidsearch raises on purpose derives from exactly one of:

- `DataError`: this event or its media is bad. Dead-letter it (with the stage and reason) and go
  on; replaying it unchanged can never succeed.
- `InfrastructureError`: a service (a store, Kafka, Redis, the disk) is unavailable. Rewind, pause,
  probe, resume; nothing is committed past the event that met it.
- `DeploymentError`: the installation or the configuration is broken (a model package, an extra
  or a weight file missing, bad settings). Fail at start-up, before consuming anything, with a
  message that names the fix.

An exception of any other class met while one event is processed is treated as a data error of
that event (dead-lettered under its real class name): an unknown failure must never stop the
consumer or stall a partition. See `classify`.
"""

from __future__ import annotations

from enum import StrEnum


class VidsearchError(Exception):
    """Base of all errors raised deliberately by vidsearch."""


class DataError(VidsearchError):
    """Bad input: dead-letter it and continue. `stage` says where it was found."""

    stage: str = "process"


class InfrastructureError(VidsearchError):
    """A service is unavailable: pause, retry, commit nothing past it."""


class DeploymentError(VidsearchError):
    """Broken installation or configuration: fail at start-up with the fix in the message."""


class ConfigError(DeploymentError):
    """Settings are missing, malformed or contradictory."""


class Handling(StrEnum):
    DEAD_LETTER = "dead_letter"
    PAUSE_AND_RETRY = "pause_and_retry"
    FAIL_AT_START = "fail_at_start"


def classify(exc: BaseException) -> Handling:
    """The one rule per class. Unknown exceptions are the event's fault (dead-letter), never a
    reason to crash: a consumer that dies on a message dies on it again after every restart.
    MemoryError and RecursionError raised while handling one event are that event's doing too."""
    if isinstance(exc, InfrastructureError):
        return Handling.PAUSE_AND_RETRY
    if isinstance(exc, DeploymentError):
        return Handling.FAIL_AT_START
    return Handling.DEAD_LETTER


class StoreUnavailableError(InfrastructureError):
    """A store did not acknowledge a batch after retries: pause, rewind, commit nothing."""

    def __init__(self, store: str, message: str) -> None:
        self.store = store
        super().__init__(f"{store}: {message}")


class StoreRejectedError(DataError):
    """A store refused one document for good (e.g. a mapping error): dead-letter that event."""

    def __init__(self, store: str, video_id: str, message: str) -> None:
        self.store, self.video_id = store, video_id
        self.stage = f"sink:{store}"
        super().__init__(f"{store} rejected {video_id}: {message}")
