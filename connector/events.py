"""The video event schema (topic `videos`, key = video_id), and parsing untrusted bytes into it.

Producers get the JSON Schema from `vidsearch schema --json`. Parsing never raises anything but
`InvalidEventError`, whose message is the reason recorded in the dead-letter topic.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from vidsearch.connector.errors import InvalidEventError

SCHEMA_VERSIONS = (1,)
VideoId = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")]


class _Event(BaseModel):
    schema_version: Literal[1]
    video_id: VideoId
    version: int | None = Field(default=None, ge=0, description="Monotonic per video; or send updated_at.")
    updated_at: datetime | None = Field(default=None, description="Used as the version (ms) when version is absent.")

    @model_validator(mode="after")
    def _version(self) -> _Event:
        if self.version is None:
            if self.updated_at is None:
                raise ValueError("one of version or updated_at is required")
            stamp = self.updated_at
            if stamp.tzinfo is None:  # naive: UTC, so every consumer orders events the same way
                stamp = stamp.replace(tzinfo=timezone.utc)
            version = int(stamp.timestamp() * 1000)
            if version < 0:
                raise ValueError("updated_at before 1970 cannot be used as a version")
            self.version = version
        return self


class VideoUpsert(_Event):
    """Create or replace a video. Extra fields are kept and passed through to the stores."""

    model_config = ConfigDict(extra="allow")
    op: Literal["upsert"]
    title: str = Field(default="", max_length=1_000)
    description: str = Field(default="", max_length=20_000)
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=100)
    language: str | None = Field(default=None, max_length=16)
    duration: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    published_at: datetime | None = None
    media_uri: str | None = Field(default=None, max_length=4_096)
    features: str | None = Field(default=None, description="base64 of a VideoFeatures record (precomputed base features)")

    @model_validator(mode="after")
    def _has_content(self) -> VideoUpsert:
        if not self.media_uri and not self.features:
            raise ValueError("an upsert needs media_uri or precomputed features")
        return self

    def features_bytes(self) -> bytes | None:
        if self.features is None:
            return None
        try:
            return base64.b64decode(self.features, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidEventError(f"features is not valid base64: {exc}", stage="features") from exc

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class VideoDelete(_Event):
    model_config = ConfigDict(extra="forbid")
    op: Literal["delete"]


VideoEvent = Annotated[VideoUpsert | VideoDelete, Field(discriminator="op")]
_ADAPTER: TypeAdapter[VideoUpsert | VideoDelete] = TypeAdapter(VideoEvent)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _short(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"])
        parts.append(f"{loc or 'event'}: {e['msg']}")
    return "; ".join(parts)


def parse_event(raw: bytes | None, max_bytes: int) -> VideoUpsert | VideoDelete:
    """Bytes from Kafka (or a file line) -> a validated event, or InvalidEventError."""
    if raw is None:
        raise InvalidEventError("empty message (null value)", stage="parse")
    if len(raw) > max_bytes:
        raise InvalidEventError(f"event of {len(raw)} bytes exceeds the {max_bytes}-byte limit", stage="parse")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidEventError(f"malformed JSON: {exc}", stage="parse") from exc
    except RecursionError as exc:
        raise InvalidEventError("malformed JSON: nested too deeply", stage="parse") from exc
    if not isinstance(data, dict):
        raise InvalidEventError(f"event must be a JSON object, got {type(data).__name__}", stage="parse")
    sv = data.get("schema_version")
    if sv not in SCHEMA_VERSIONS:
        raise InvalidEventError(f"unknown schema_version {sv!r}; this consumer reads {list(SCHEMA_VERSIONS)}", stage="schema")
    if data.get("op") not in ("upsert", "delete"):
        raise InvalidEventError(f"unknown op {data.get('op')!r}; expected 'upsert' or 'delete'", stage="schema")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise InvalidEventError(_short(exc), stage="schema") from exc


def json_schema() -> dict[str, Any]:
    schema = _ADAPTER.json_schema()
    schema["title"] = "vidsearch video event"
    schema["description"] = "JSON value on topic `videos`, key = video_id (UTF-8)."
    return schema
