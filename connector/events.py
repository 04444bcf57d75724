"""The video event schema (topic `videos`, key = video_id), and parsing untrusted bytes into it.

Producers get the JSON Schema from `vidsearch schema --json`. Parsing never raises anything but
`InvalidEventError`, whose message is the reason recorded in the dead-letter topic.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from vidsearch.connector.errors import EventLimitError, InvalidEventError
from vidsearch.core.settings import EventLimitSettings

SCHEMA_VERSIONS = (1,)
INT64_MAX = 2**63 - 1  # versions are int64 in both stores (Milvus INT64, OpenSearch long/_version)
# String fields are bounded in UTF-8 bytes as well as characters, to what both stores accept:
# Milvus VARCHAR/ARRAY max_length counts bytes (plugins/milvus/videos.py: id 256, title
# MAX_TITLE_BYTES, text MAX_TEXT_BYTES, language 16, tags 100 each) and an OpenSearch keyword term
# must stay under 32766 bytes (plugins/opensearch/videos.py: video_id, tags, language, media_uri).
VIDEO_ID_MAX_BYTES = 256
TITLE_MAX_BYTES = 4_000
DESCRIPTION_MAX_BYTES = 60_000
TAG_MAX_BYTES = 100
LANGUAGE_MAX_BYTES = 16
MEDIA_URI_MAX_BYTES = 4_096
DURATION_MAX_S = 1e9  # Milvus stores duration as float32; far beyond any real video anyway


def _utf8_bytes(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise ValueError("String is not valid Unicode (lone surrogate)") from exc
        if size > limit:
            raise ValueError(f"String should have at most {limit} UTF-8 bytes, got {size}")
        return value

    return AfterValidator(check)


def _epoch_ms(stamp: datetime) -> int:
    """Milliseconds since the epoch; naive means UTC so every consumer orders events the same way."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    try:
        return int(stamp.timestamp() * 1000)
    except (OverflowError, ValueError, OSError) as exc:  # year 1 with a positive offset, ...
        raise ValueError(f"date {stamp.isoformat()} is out of range") from exc


def _storable_datetime(value: datetime) -> datetime:
    """Naive means UTC (as for updated_at): the stores must not read it in their host's zone,
    where year 1 or 9999 may not even convert. A value no store can hold is refused here."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    _epoch_ms(value)
    return value


VideoId = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"),
                    _utf8_bytes(VIDEO_ID_MAX_BYTES)]


class _Event(BaseModel):
    schema_version: Literal[1]
    video_id: VideoId
    version: int | None = Field(default=None, ge=0, le=INT64_MAX, description="Monotonic per video (int64); or send updated_at.")
    updated_at: datetime | None = Field(default=None, description="Used as the version (ms) when version is absent.")

    @model_validator(mode="after")
    def _version(self) -> _Event:
        if self.version is None:
            if self.updated_at is None:
                raise ValueError("one of version or updated_at is required")
            version = _epoch_ms(self.updated_at)
            if version < 0:
                raise ValueError("updated_at before 1970 cannot be used as a version")
            if version > INT64_MAX:
                raise ValueError("updated_at is beyond the int64 version range")
            self.version = version
        return self

    @property
    def resolved_version(self) -> int:
        """`version` as validation leaves it: always set (from updated_at when it was absent)."""
        if self.version is None:  # only an event built without validation (model_construct)
            raise ValueError(f"event for {self.video_id!r} has no version")
        return self.version


class VideoUpsert(_Event):
    """Create or replace a video. Extra fields are kept and passed through to the stores."""

    model_config = ConfigDict(extra="allow")
    op: Literal["upsert"]
    title: Annotated[str, Field(max_length=1_000), _utf8_bytes(TITLE_MAX_BYTES)] = ""
    description: Annotated[str, Field(max_length=20_000), _utf8_bytes(DESCRIPTION_MAX_BYTES)] = ""
    tags: list[Annotated[str, Field(max_length=100), _utf8_bytes(TAG_MAX_BYTES)]] = Field(default_factory=list, max_length=100)
    language: Annotated[str, Field(max_length=16), _utf8_bytes(LANGUAGE_MAX_BYTES)] | None = None
    duration: float | None = Field(default=None, ge=0, le=DURATION_MAX_S, allow_inf_nan=False)
    published_at: Annotated[datetime, AfterValidator(_storable_datetime)] | None = None
    media_uri: Annotated[str, Field(max_length=4_096), _utf8_bytes(MEDIA_URI_MAX_BYTES)] | None = None
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


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 is valid JSON but parses as inf
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _short(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"])
        parts.append(f"{loc or 'event'}: {e['msg']}")
    return "; ".join(parts)


def _check_unicode(data: Any) -> None:
    """Every string (keys too) must encode as UTF-8: JSON escapes can carry lone surrogates
    (\\ud800), which every store's client fails on when it serialises the document later."""
    stack = [data]
    while stack:  # iterative: the JSON may be nested as deep as the parser allowed
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidEventError(f"invalid Unicode in a string: {exc.reason} at {exc.start}", stage="parse") from exc


def check_extra(extra: dict[str, Any], limits: EventLimitSettings) -> None:
    """Pass-through fields go to both stores as-is and are re-serialised there, so their shape is
    bounded: depth (a deep value would raise RecursionError in a JSON encoder later), key count,
    key length, serialized size, and integers within int64."""
    keys = 0
    stack: list[tuple[Any, int]] = [(extra, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > limits.extra_max_depth:
            raise EventLimitError(f"extra fields are nested deeper than {limits.extra_max_depth} levels", stage="limits")
        if isinstance(value, dict):
            keys += len(value)
            if keys > limits.extra_max_keys:
                raise EventLimitError(f"extra fields have more than {limits.extra_max_keys} keys", stage="limits")
            for key, item in value.items():
                if len(key) > limits.extra_key_max_chars:
                    raise EventLimitError(f"extra field name {key[:40]!r}... is longer than {limits.extra_key_max_chars} characters", stage="limits")
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value <= INT64_MAX:
            raise EventLimitError("an extra field holds an integer beyond the int64 range", stage="limits")
    size = len(json.dumps(extra, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > limits.extra_max_bytes:
        raise EventLimitError(f"extra fields take {size} bytes as JSON, over the {limits.extra_max_bytes}-byte limit", stage="limits")


def parse_event(raw: bytes | None, max_bytes: int, limits: EventLimitSettings | None = None) -> VideoUpsert | VideoDelete:
    """Bytes from Kafka (or a file line) -> a validated event, or InvalidEventError; nothing else,
    whatever the bytes (an exception of another class would stall the partition on one message)."""
    if raw is None:
        raise InvalidEventError("empty message (null value)", stage="parse")
    if len(raw) > max_bytes:
        raise EventLimitError(f"event of {len(raw)} bytes exceeds the {max_bytes}-byte limit", stage="parse")
    limits = limits or EventLimitSettings()
    try:
        text = bytes(raw).decode("utf-8")  # JSON on the wire is UTF-8 (RFC 8259), nothing else
    except UnicodeDecodeError as exc:
        raise InvalidEventError(f"malformed JSON: not UTF-8: {exc}", stage="parse") from exc
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except ValueError as exc:
        raise InvalidEventError(f"malformed JSON: {exc}", stage="parse") from exc
    except (RecursionError, MemoryError) as exc:
        raise InvalidEventError("malformed JSON: nested too deeply", stage="parse") from exc
    if not isinstance(data, dict):
        raise InvalidEventError(f"event must be a JSON object, got {type(data).__name__}", stage="parse")
    _check_unicode(data)
    sv = data.get("schema_version")
    if type(sv) is not int or sv not in SCHEMA_VERSIONS:
        raise InvalidEventError(f"unknown schema_version {sv!r}; this consumer reads {list(SCHEMA_VERSIONS)}", stage="schema")
    if data.get("op") not in ("upsert", "delete"):
        raise InvalidEventError(f"unknown op {data.get('op')!r}; expected 'upsert' or 'delete'", stage="schema")
    if data["op"] == "upsert":
        check_extra({k: v for k, v in data.items() if k not in VideoUpsert.model_fields}, limits)
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise InvalidEventError(_short(exc), stage="schema") from exc
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:  # defence in depth
        raise InvalidEventError(f"invalid event: {type(exc).__name__}: {str(exc)[:200]}", stage="schema") from exc


def json_schema() -> dict[str, Any]:
    schema = _ADAPTER.json_schema()
    schema["title"] = "vidsearch video event"
    schema["description"] = "JSON value on topic `videos`, key = video_id (UTF-8)."
    return schema
