"""Errors of the connector. `stage` says where an event failed; it travels into the DLQ headers.
Each class derives from one of the three handling classes in `vidsearch.ops.errors`."""

from __future__ import annotations

from vidsearch.ops.errors import DataError, DeploymentError, InfrastructureError, VidsearchError


class ConnectorError(VidsearchError):
    """Base of the connector's errors."""


class InvalidEventError(ConnectorError, DataError):
    """An event that can never be indexed as sent (bad JSON, schema, limits, media policy)."""

    def __init__(self, message: str, stage: str = "validate") -> None:
        self.stage = stage
        super().__init__(message)


class EventLimitError(InvalidEventError):
    """An event (or a part of it: features, extra fields, a string) is over a configured limit."""


class MediaPolicyError(InvalidEventError):
    """The media URI is not allowed (path escape, scheme, host, private address)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, stage="media_policy")


class StoreUnavailableError(ConnectorError, InfrastructureError):
    """A store did not acknowledge a batch after retries: pause, rewind, commit nothing."""

    def __init__(self, store: str, message: str) -> None:
        self.store = store
        super().__init__(f"{store}: {message}")


class FeatureStoreUnavailableError(StoreUnavailableError):
    """The feature store (a disk or shared volume) could not be written: pause and retry."""

    def __init__(self, message: str) -> None:
        super().__init__("feature_store", message)


class StoreRejectedError(ConnectorError, DataError):
    """A store refused one document for good (e.g. a mapping error): dead-letter that event."""

    def __init__(self, store: str, video_id: str, message: str) -> None:
        self.store, self.video_id = store, video_id
        self.stage = f"sink:{store}"
        super().__init__(f"{store} rejected {video_id}: {message}")


class ConnectorDeploymentError(ConnectorError, DeploymentError):
    """The indexer cannot run as configured (unknown sink, missing encoder packages)."""
