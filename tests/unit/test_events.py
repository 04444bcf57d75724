"""parse_event, json_schema and check_features: the gate every untrusted event passes through.

Each refusal must be an InvalidEventError with a reason a producer can act on and the stage
that lands in the DLQ headers; anything else escaping would stall the consumer on one message.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
import pytest

from vidsearch.connector.encoding import check_features
from vidsearch.connector.errors import InvalidEventError
from vidsearch.connector.events import VideoDelete, VideoUpsert, json_schema, parse_event
from vidsearch.ops.bench.events import delete, synthetic_features, upsert

pytestmark = pytest.mark.unit

BIG = 100 * 1024**2  # a size limit that never triggers
DROP = object()


def _event(**changes: Any) -> bytes:
    """A valid upsert (from the bench helper) with fields replaced, or removed with DROP."""
    data = json.loads(upsert("vid-1", 3, seed=1))
    for key, value in changes.items():
        if value is DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data).encode()


def _valid_prefix(tail: str) -> bytes:
    """Raw JSON text (json.dumps would never write NaN/Infinity this way on purpose)."""
    return ('{"schema_version": 1, "op": "upsert", "video_id": "a", "version": 1, "features": "AA==", ' + tail + "}").encode()


def test_valid_upsert_parses() -> None:
    event = parse_event(upsert("vid-1", 3, seed=1, language="fr"), BIG)
    assert isinstance(event, VideoUpsert)
    assert (event.video_id, event.version, event.op, event.language) == ("vid-1", 3, "upsert", "fr")
    assert event.tags == json.loads(upsert("vid-1", 3, seed=1))["tags"]
    assert event.features_bytes() == synthetic_features(1).to_bytes()


def test_valid_delete_parses() -> None:
    event = parse_event(delete("vid-9", 12), BIG)
    assert isinstance(event, VideoDelete)
    assert (event.video_id, event.version, event.op) == ("vid-9", 12, "delete")


def test_delete_refuses_extra_fields() -> None:
    """Deletes are strict (extra='forbid'), unlike upserts."""
    raw = json.dumps({"schema_version": 1, "op": "delete", "video_id": "d", "version": 4, "title": "x"}).encode()
    with pytest.raises(InvalidEventError, match=r"delete\.title: Extra inputs are not permitted") as exc:
        parse_event(raw, BIG)
    assert exc.value.stage == "schema"


@pytest.mark.parametrize(
    ("updated_at", "expected_ms"),
    [("2024-01-02T03:04:05Z", 1_704_164_645_000), ("2024-01-02T05:04:05.250+02:00", 1_704_164_645_250)],
)
def test_updated_at_becomes_epoch_ms_version(updated_at: str, expected_ms: int) -> None:
    event = parse_event(_event(version=DROP, updated_at=updated_at), BIG)
    assert event.version == expected_ms


def test_explicit_version_wins_over_updated_at() -> None:
    assert parse_event(_event(version=5, updated_at="2024-01-02T03:04:05Z"), BIG).version == 5


def test_upsert_keeps_unknown_fields() -> None:
    event = parse_event(_event(channel={"id": 7, "name": "cooking"}, rating=4.5), BIG)
    assert isinstance(event, VideoUpsert)
    assert event.extra == {"channel": {"id": 7, "name": "cooking"}, "rating": 4.5}


@pytest.mark.parametrize(
    ("raw", "max_bytes", "stage", "message"),
    [
        (None, BIG, "parse", "empty message (null value)"),
        (b"x" * 101, 100, "parse", "event of 101 bytes exceeds the 100-byte limit"),
        (b'{"schema_version": 1,', BIG, "parse", "malformed JSON"),
        (b"\xff\xfe{}", BIG, "parse", "malformed JSON"),
        (b'[{"schema_version": 1}]', BIG, "parse", "event must be a JSON object, got list"),
        (_valid_prefix('"duration": NaN'), BIG, "parse", "NaN is not valid JSON"),
        (_valid_prefix('"duration": Infinity'), BIG, "parse", "Infinity is not valid JSON"),
        (_valid_prefix('"duration": -Infinity'), BIG, "parse", "-Infinity is not valid JSON"),
        (_event(schema_version=2), BIG, "schema", "unknown schema_version 2; this consumer reads [1]"),
        (_event(schema_version=DROP), BIG, "schema", "unknown schema_version None"),
        (_event(op="merge"), BIG, "schema", "unknown op 'merge'; expected 'upsert' or 'delete'"),
        (_event(video_id=DROP), BIG, "schema", "upsert.video_id: Field required"),
        (_event(video_id="a/b"), BIG, "schema", "upsert.video_id: String should match pattern"),
        (_event(video_id="a b"), BIG, "schema", "upsert.video_id: String should match pattern"),
        (_event(video_id="v" * 300), BIG, "schema", "upsert.video_id: String should have at most 256 characters"),
        (_event(version=-1), BIG, "schema", "upsert.version: Input should be greater than or equal to 0"),
        (_event(version=DROP), BIG, "schema", "one of version or updated_at is required"),
        (_event(title="t" * 10_000_000), BIG, "schema", "upsert.title: String should have at most 1000 characters"),
        (_event(tags=["t"] * 101), BIG, "schema", "upsert.tags: List should have at most 100 items"),
        (_event(features=DROP), BIG, "schema", "an upsert needs media_uri or precomputed features"),
        (_event(features="", media_uri=""), BIG, "schema", "an upsert needs media_uri or precomputed features"),
        (_event(version="abc"), BIG, "schema", "upsert.version: Input should be a valid integer"),
        (_event(tags="cats"), BIG, "schema", "upsert.tags: Input should be a valid list"),
        (_event(duration=-1.0), BIG, "schema", "upsert.duration: Input should be greater than or equal to 0"),
    ],
    ids=[
        "null", "too-big", "truncated-json", "not-utf8", "array", "nan", "infinity", "minus-infinity",
        "schema-2", "schema-missing", "op-merge", "no-video-id", "id-slash", "id-space", "id-300",
        "negative-version", "no-version", "title-10mb", "101-tags", "no-content", "empty-content",
        "version-abc", "tags-string", "negative-duration",
    ],
)
def test_invalid_events_are_refused(raw: bytes | None, max_bytes: int, stage: str, message: str) -> None:
    with pytest.raises(InvalidEventError) as exc:
        parse_event(raw, max_bytes)
    assert message in str(exc.value)
    assert exc.value.stage == stage


def test_features_bytes_rejects_invalid_base64() -> None:
    """The event itself is valid; the payload is only decoded later, by the encoder."""
    event = parse_event(_event(features="not base64!!"), BIG)
    assert isinstance(event, VideoUpsert)
    with pytest.raises(InvalidEventError, match="features is not valid base64"):
        event.features_bytes()


def test_deeply_nested_json_is_an_invalid_event() -> None:
    """100 kB of '[' is far under the size limit; it must dead-letter, not crash the consumer."""
    with pytest.raises(InvalidEventError) as exc:
        parse_event(b"[" * 100_000, BIG)
    assert exc.value.stage == "parse"


def test_updated_at_before_epoch_never_gives_negative_version() -> None:
    try:
        version = parse_event(_event(version=DROP, updated_at="1969-07-20T20:17:00Z"), BIG).version
    except InvalidEventError:
        return
    assert version is not None and version >= 0


def _version_in_tz(tz: str, raw: bytes) -> int | str:
    old = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        return int(parse_event(raw, BIG).version or 0)
    except InvalidEventError:
        return "rejected"
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_naive_updated_at_does_not_depend_on_host_timezone() -> None:
    raw = _event(version=DROP, updated_at="2024-01-02T03:04:05")
    assert _version_in_tz("UTC", raw) == _version_in_tz("Asia/Tokyo", raw)


def test_json_schema_covers_both_ops() -> None:
    schema = json_schema()
    text = json.dumps(schema)
    assert schema["title"] == "vidsearch video event"
    assert '"upsert"' in text and '"delete"' in text
    assert len(schema["oneOf"]) == 2


def test_check_features_accepts_synthetic_features() -> None:
    assert check_features(synthetic_features(1)) is None


def test_check_features_rejects_nan() -> None:
    feats = synthetic_features(1)
    feats.frame_bridge[0, 5] = np.nan
    with pytest.raises(InvalidEventError, match="features.frame_bridge contains NaN or infinite values") as exc:
        check_features(feats)
    assert exc.value.stage == "features"


def test_check_features_rejects_wrong_dimension() -> None:
    feats = synthetic_features(1)
    feats.audio_vector = np.zeros(383, np.float32)
    with pytest.raises(InvalidEventError, match=r"features.audio_vector has shape \(383,\), expected 1-d ending in 384") as exc:
        check_features(feats)
    assert exc.value.stage == "features"


def test_check_features_rejects_keyframe_count_mismatch() -> None:
    feats = synthetic_features(1, keyframes=2)
    feats.keyframe_times = np.array([0.0, 1.0, 2.0], np.float32)
    with pytest.raises(InvalidEventError, match="keyframe_times and frame_bridge differ in length") as exc:
        check_features(feats)
    assert exc.value.stage == "features"


def test_check_features_rejects_wrong_rank() -> None:
    """A 2-D text vector would otherwise slip through and produce a wrongly shaped document."""
    feats = synthetic_features(2)
    feats.text_ocr = np.zeros((2, 384), np.float32)
    with pytest.raises(InvalidEventError, match=r"features.text_ocr has shape \(2, 384\)"):
        check_features(feats)


def test_feature_payloads_of_the_wrong_kind_are_typed_errors() -> None:
    import io

    from vidsearch.encoders.features import FeatureFormatError, VideoFeatures

    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    with pytest.raises(FeatureFormatError):
        VideoFeatures.from_bytes(buf.getvalue())
