"""Errors of the connector. `stage` says where an event failed; it travels into the DLQ headers.
Each class derives from one of the three handling classes in `vidsearch.core.errors`."""

from __future__ import annotations

from vidsearch.core.errors import DataError, DeploymentError, StoreUnavailableError, VidsearchError


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


class FeatureStoreUnavailableError(StoreUnavailableError):
    """The feature store (a disk or shared volume) could not be written: pause and retry."""

    def __init__(self, message: str) -> None:
        super().__init__("feature_store", message)


class ConnectorDeploymentError(ConnectorError, DeploymentError):
    """The indexer cannot run as configured (unknown sink, missing encoder packages)."""
