"""Every limit on what an untrusted event may make the indexer parse, allocate, store or
dead-letter: int64 versions, pass-through fields, byte-bounded strings, hostile feature records
(decompression bombs, huge declared shapes, wrong dtypes, lying zip sizes), the OpenSearch bulk
split and the DLQ record bound.

The record helpers here (`npy_member`, `record_zip`, `lie_size`) are reused by the fuzzer.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
import tracemalloc
import zipfile
from typing import Any

import numpy as np
import pytest

from vidsearch.connector.encoding import EventEncoder, check_features
from vidsearch.connector.errors import EventLimitError, InvalidEventError
from vidsearch.connector.events import INT64_MAX, VideoUpsert, parse_event
from vidsearch.connector.messages import DeadLetter, Message
from vidsearch.core.errors import DataError
from vidsearch.core.settings import EventLimitSettings, Settings
from vidsearch.encoders.features import ARRAYS, FeatureFormatError, FeatureLimitError, FeatureLimits, VideoFeatures
from vidsearch.ops.bench.events import synthetic_features
from vidsearch.plugins.opensearch.bulk import plan_bulk, split_bulk

pytestmark = pytest.mark.unit

BIG = 100 * 1024**2


# ---------------------------------------------------------------- helpers (shared with the fuzzer)

def npy_raw(header_text: str, body: bytes = b"", version: bytes = b"\x01\x00") -> bytes:
    """A `.npy` with any header text at all (numpy parses it as a Python literal)."""
    header = header_text.encode("latin1", "replace")
    pad = 64 - (10 + len(header) + 1) % 64
    header += b" " * pad + b"\n"
    return b"\x93NUMPY" + version + struct.pack("<H", len(header) % 65536) + header + body


def npy_member(descr: Any, shape: Any, body: bytes = b"", fortran: Any = False) -> bytes:
    """A `.npy` (format 1.0) whose header says whatever we like, followed by `body`."""
    return npy_raw(repr({"descr": descr, "fortran_order": fortran, "shape": shape}), body)


def record_members(feats: VideoFeatures | None = None) -> dict[str, bytes]:
    """The members of a valid record, as `.npy` bytes, ready to be tampered with."""
    data = (feats or synthetic_features(1)).to_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def record_zip(members: dict[str, bytes], compress: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def lie_size(data: bytes, name: str, size: int) -> bytes:
    """Rewrite the uncompressed size the central directory declares for `name`."""
    out = bytearray(data)
    pos = out.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack_from("<H", out, pos + 28)[0]
        if out[pos + 46:pos + 46 + name_len] == name.encode():
            struct.pack_into("<I", out, pos + 24, size)
            return bytes(out)
        pos = out.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(f"{name} not in zip")


def features_event(record: bytes, **fields: Any) -> bytes:
    event = {"schema_version": 1, "op": "upsert", "video_id": "v1", "version": 1,
             "features": base64.b64encode(record).decode(), **fields}
    return json.dumps(event).encode()


class FakeText:
    """Stands in for the text encoder: base_features of a features event never calls it."""

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.zeros((len(texts), 384), np.float32)


def encoder(settings: Settings | None = None) -> EventEncoder:
    return EventEncoder(settings or Settings(), FakeText())  # type: ignore[arg-type]


def base_features(record: bytes, settings: Settings | None = None) -> VideoFeatures:
    event = parse_event(features_event(record), BIG)
    assert isinstance(event, VideoUpsert)
    return encoder(settings).base_features(event)


def _upsert(**fields: Any) -> bytes:
    return json.dumps({"schema_version": 1, "op": "upsert", "video_id": "v1", "version": 1, "features": "AA==", **fields},
                      ensure_ascii=False).encode()


# ---------------------------------------------------------------- versions

def test_version_is_bounded_to_int64() -> None:
    assert parse_event(_upsert(version=INT64_MAX), BIG).version == INT64_MAX
    with pytest.raises(InvalidEventError, match="less than or equal to 9223372036854775807") as exc:
        parse_event(_upsert(version=INT64_MAX + 1), BIG)
    assert exc.value.stage == "schema"


def test_updated_at_out_of_range_is_an_invalid_event_not_an_overflow() -> None:
    with pytest.raises(InvalidEventError):
        parse_event(_upsert(version=None, updated_at="0001-01-01T00:00:00+01:00"), BIG)
    assert parse_event(_upsert(version=None, updated_at="9999-12-31T23:59:59Z"), BIG).version == 253_402_300_799_000


def test_naive_published_at_is_utc_so_every_store_can_convert_it() -> None:
    event = parse_event(_upsert(published_at="0001-01-01T00:00:00"), BIG)
    assert isinstance(event, VideoUpsert) and event.published_at is not None
    assert event.published_at.utcoffset() is not None and event.published_at.timestamp() < 0


# ---------------------------------------------------------------- pass-through fields

def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_extra_fields_within_limits_pass_through() -> None:
    event = parse_event(_upsert(channel=_nested(8), rating=4.5), BIG)
    assert isinstance(event, VideoUpsert) and event.extra["rating"] == 4.5


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"channel": _nested(9)}, "nested deeper than 8 levels"),
        ({"deep": json.loads("[" * 500 + "]" * 500)}, "nested deeper than 8 levels"),
        ({"blob": "x" * 70_000}, "over the 65536-byte limit"),
        ({f"k{i}": i for i in range(257)}, "more than 256 keys"),
        ({"k" * 129: 1}, "longer than 128 characters"),
        ({"n": 2**63}, "beyond the int64 range"),
    ],
    ids=["depth-9", "depth-500", "64k", "257-keys", "long-key", "big-int"],
)
def test_extra_fields_over_a_limit_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(EventLimitError, match=message) as exc:
        parse_event(_upsert(**fields), BIG)
    assert exc.value.stage == "limits"


def test_extra_limits_come_from_settings() -> None:
    tight = EventLimitSettings(extra_max_depth=2, extra_max_bytes=64)
    with pytest.raises(EventLimitError, match="deeper than 2"):
        parse_event(_upsert(channel=_nested(3)), BIG, tight)
    with pytest.raises(EventLimitError, match="64-byte limit"):
        parse_event(_upsert(note="y" * 80), BIG, tight)
    assert Settings(indexer={"limits": {"extra_max_depth": 3}}).indexer.limits.extra_max_depth == 3


def test_nan_and_overflowing_numbers_are_refused_everywhere() -> None:
    for raw in (b'{"schema_version": 1, "op": "upsert", "video_id": "a", "version": 1, "features": "AA==", "x": [1e999]}',
                b'{"schema_version": 1, "op": "upsert", "video_id": "a", "version": 1, "features": "AA==", "x": {"y": NaN}}',
                b'{"schema_version": 1, "op": "upsert", "video_id": "a", "version": 1, "features": "AA==", "duration": 1e300}'):
        with pytest.raises(InvalidEventError):
            parse_event(raw, BIG)


# ---------------------------------------------------------------- strings in bytes

@pytest.mark.parametrize(
    ("field", "ok", "too_long"),
    [
        ("description", "😀" * 15_000, "😀" * 15_001),  # 60 004 bytes in 15 001 characters
        ("language", "de-CH", "日本語日本語"),  # 18 bytes in 6 characters
        ("media_uri", "/m/" + "é" * 2000, "/m/" + "é" * 2047),  # 4 097 bytes in 2 050 characters
    ],
)
def test_strings_are_bounded_in_utf8_bytes(field: str, ok: str, too_long: str) -> None:
    assert getattr(parse_event(_upsert(**{field: ok}), BIG), field) == ok
    with pytest.raises(InvalidEventError, match=rf"{field}: Value error, String should have at most \d+ UTF-8 bytes") as exc:
        parse_event(_upsert(**{field: too_long}), BIG)
    assert exc.value.stage == "schema"


def test_title_of_four_byte_characters_fits_milvus() -> None:
    """1000 characters can take at most 4000 bytes: exactly MAX_TITLE_BYTES."""
    assert parse_event(_upsert(title="😀" * 1000), BIG).title == "😀" * 1000  # type: ignore[union-attr]


def test_tags_are_bounded_in_bytes() -> None:
    assert parse_event(_upsert(tags=["é" * 50]), BIG).tags == ["é" * 50]  # type: ignore[union-attr]
    with pytest.raises(InvalidEventError, match="at most 100 UTF-8 bytes"):
        parse_event(_upsert(tags=["é" * 51]), BIG)


def test_byte_limits_fit_the_store_schemas() -> None:
    """What the parser accepts, both stores must accept (Milvus VARCHAR lengths are bytes)."""
    from vidsearch.connector import events
    from vidsearch.plugins.milvus import videos as milvus

    assert events.TITLE_MAX_BYTES <= milvus.MAX_TITLE_BYTES
    assert events.DESCRIPTION_MAX_BYTES <= milvus.MAX_TEXT_BYTES
    for limit in (events.VIDEO_ID_MAX_BYTES, events.TAG_MAX_BYTES, events.LANGUAGE_MAX_BYTES, events.MEDIA_URI_MAX_BYTES):
        assert limit < 32766  # OpenSearch keyword term limit
    assert (events.VIDEO_ID_MAX_BYTES, events.TAG_MAX_BYTES, events.LANGUAGE_MAX_BYTES) == (256, 100, 16)


@pytest.mark.parametrize("escaped", [r"\ud800", r"\udfff", r"x\ud83d"])
def test_lone_surrogates_are_refused(escaped: str) -> None:
    for where in ('"title": "%s"', '"tags": ["%s"]', '"extra": {"%s": 1}'):
        raw = ('{"schema_version": 1, "op": "upsert", "video_id": "a", "version": 1, "features": "AA==", '
               + where % escaped + "}").encode()
        with pytest.raises(InvalidEventError, match="invalid Unicode") as exc:
            parse_event(raw, BIG)
        assert exc.value.stage == "parse"


@pytest.mark.parametrize("raw", [b'{"a": "\xed\xa0\x80"}', b"\xc3\x28", '{"a": 1}'.encode("utf-16")])
def test_bytes_that_are_not_utf8_are_malformed_json(raw: bytes) -> None:
    with pytest.raises(InvalidEventError, match="not UTF-8"):
        parse_event(raw, BIG)


# ---------------------------------------------------------------- feature records

def test_valid_record_passes_every_check() -> None:
    feats = base_features(synthetic_features(3).to_bytes())
    assert feats.frame_bridge.shape == (2, 384) and feats.frame_top_classes.dtype == np.int16


def test_bomb_with_a_huge_declared_shape_is_refused_before_allocating() -> None:
    """A 200-byte member claims (10**6, 1280) float64 = 10 GB; nothing of it may be allocated."""
    members = record_members()
    members["frame_features.npy"] = npy_member("<f8", (10**6, 1280))
    record = record_zip(members)
    tracemalloc.start()
    try:
        with pytest.raises((FeatureFormatError, EventLimitError), match="frame_features") as exc:
            base_features(record)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 1024**2  # refused from the header alone: nothing of the 10 GB was allocated
    assert isinstance(exc.value, FeatureLimitError) and exc.value.stage == "features"


def test_deflate_bomb_is_refused_by_its_declared_size() -> None:
    """80 MB of zeros deflate to ~80 kB: the member's declared size is over the limit, so it is
    refused without inflating a byte."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in record_members().items():
            zf.writestr(name, data)
        with zf.open("padding.npy", "w", force_zip64=True) as fh:
            chunk = bytes(1024**2)
            for _ in range(80):
                fh.write(chunk)
    record = buf.getvalue()
    assert len(record) < 1024**2
    tracemalloc.start()
    try:
        with pytest.raises(FeatureLimitError, match="padding"):
            VideoFeatures.from_bytes(record)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 1024**2


def test_member_that_understates_its_size_cannot_inflate_past_it() -> None:
    """zipfile stops at the declared size; the header then disagrees with the member."""
    members = record_members()
    record = record_zip(members, zipfile.ZIP_DEFLATED)
    lied = lie_size(record, "frame_features.npy", 200)
    with pytest.raises(FeatureFormatError, match="frame_features"):
        VideoFeatures.from_bytes(lied)


def test_member_that_overstates_its_size_is_refused() -> None:
    lied = lie_size(record_zip(record_members()), "audio_vector.npy", 2**31)
    with pytest.raises(FeatureLimitError, match="audio_vector"):
        VideoFeatures.from_bytes(lied)


@pytest.mark.parametrize(
    ("name", "descr", "message"),
    [
        ("frame_bridge", "<i4", "not allowed, expected a float array"),
        ("audio_vector", "<c8", "not allowed"),
        ("frame_features", "|O", "not a plain number type"),
        ("text_ocr", "<U4", "not allowed"),
        ("frame_top_classes", "<f4", "expected an integer array"),
        ("text_metadata", "<f16", "not allowed"),
    ],
)
def test_arrays_of_the_wrong_dtype_are_refused(name: str, descr: str, message: str) -> None:
    members = record_members()
    head = np.lib.format.read_array_header_1_0(_skip_magic(members[f"{name}.npy"]))
    shape = head[0]
    itemsize = np.dtype(descr).itemsize if descr != "|O" else 8
    members[f"{name}.npy"] = npy_member(descr, shape, bytes(int(np.prod(shape)) * itemsize))
    with pytest.raises(FeatureFormatError, match=message):
        VideoFeatures.from_bytes(record_zip(members))


def _skip_magic(member: bytes) -> io.BytesIO:
    fp = io.BytesIO(member)
    np.lib.format.read_magic(fp)
    return fp


def test_structured_and_pickled_arrays_are_refused() -> None:
    members = record_members()
    members["text_ocr.npy"] = npy_member([("a", "<f4")], (384,), bytes(384 * 4))
    with pytest.raises(FeatureFormatError, match="text_ocr"):
        VideoFeatures.from_bytes(record_zip(members))
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    members = record_members()
    members["text_ocr.npy"] = buf.getvalue()
    with pytest.raises(FeatureFormatError, match="not a plain number type"):
        VideoFeatures.from_bytes(record_zip(members))


def test_row_counts_must_match_the_keyframes() -> None:
    members = record_members(synthetic_features(1, keyframes=3))
    members["frame_top_probs.npy"] = npy_member("<f4", (2, 5), bytes(2 * 5 * 4))
    with pytest.raises(FeatureFormatError, match="frame_top_probs has 2 rows for 3 keyframes"):
        VideoFeatures.from_bytes(record_zip(members))


def test_keyframe_count_limit_comes_from_settings() -> None:
    record = synthetic_features(1, keyframes=6).to_bytes()
    settings = Settings(indexer={"limits": {"features_max_keyframes": 5}})
    with pytest.raises(FeatureLimitError, match="6 keyframes, more than the limit of 5") as exc:
        base_features(record, settings)
    assert exc.value.stage == "features"
    assert len(base_features(record).keyframe_times) == 6


def test_byte_limits_come_from_settings() -> None:
    record = synthetic_features(1, keyframes=4).to_bytes()  # frame_features: 4*1280*4 = 20480 bytes
    with pytest.raises(FeatureLimitError, match="frame_features"):
        base_features(record, Settings(indexer={"limits": {"features_max_array_bytes": 16_384}}))
    with pytest.raises(FeatureLimitError):
        base_features(record, Settings(indexer={"limits": {"features_max_bytes": 16_384}}))


def test_too_many_or_duplicate_members_are_refused() -> None:
    members = record_members()
    with pytest.raises(FeatureLimitError, match="members"):
        VideoFeatures.from_bytes(record_zip({**members, **{f"x{i}.npy": b"" for i in range(10)}}))
    with pytest.raises(FeatureFormatError, match="unexpected members"):
        VideoFeatures.from_bytes(record_zip({**members, "x.npy": npy_member("<f4", (1,), bytes(4))}))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("audio_vector.npy", members["audio_vector.npy"])
    with pytest.raises(FeatureFormatError, match="appears twice"):
        VideoFeatures.from_bytes(buf.getvalue())


def test_a_zip_directory_of_many_entries_is_refused_before_it_is_parsed() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(20_000):
            zf.writestr(str(i), b"")
    with pytest.raises(FeatureLimitError, match="zip directory of"):  # from the end record, before zipfile parses it
        VideoFeatures.from_bytes(buf.getvalue())


def test_metadata_member_is_bounded_and_typed() -> None:
    members = record_members()
    members["__meta__.npy"] = npy_member("|u1", (10**9,))
    with pytest.raises(FeatureLimitError, match="__meta__"):
        VideoFeatures.from_bytes(record_zip(members))
    for meta in ({"video_id": "a", "format_version": 1, "transcript": "oops"},
                 {"video_id": "a", "format_version": 1, "duration_s": -1},
                 {"video_id": 7, "format_version": 1}):
        body = json.dumps(meta).encode()
        members["__meta__.npy"] = npy_member("|u1", (len(body),), body)
        with pytest.raises(FeatureFormatError, match="malformed VideoFeatures metadata"):
            VideoFeatures.from_bytes(record_zip(members))
    body = b'{"video_id": "a", "format_version": 1, "title": "\\ud800"}'
    members["__meta__.npy"] = npy_member("|u1", (len(body),), body)
    with pytest.raises(FeatureFormatError, match="not valid Unicode"):
        VideoFeatures.from_bytes(record_zip(members))


def test_record_reading_raises_only_typed_errors_on_damage() -> None:
    """Flip bytes all over a valid record: every outcome is a record or a FeatureFormatError."""
    good = record_zip(record_members(), zipfile.ZIP_DEFLATED)
    rng = np.random.default_rng(0)
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(300):
        bad = bytearray(good)
        for pos in rng.integers(0, len(bad), 3):
            bad[pos] = int(rng.integers(0, 256))
        try:
            VideoFeatures.from_bytes(bytes(bad), FeatureLimits())
            outcomes["ok"] += 1
        except FeatureFormatError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 250


# Crashes the fuzzer found in the first version of the record reader (kept as regressions):

def test_header_that_breaks_numpys_python2_fallback_parser() -> None:
    """An unclosed header made numpy's tokenize-based fallback raise TokenError."""
    members = record_members()
    members["keyframe_times.npy"] = npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (2,")
    with pytest.raises(FeatureFormatError, match="keyframe_times: unreadable .npy header"):
        VideoFeatures.from_bytes(record_zip(members))


def test_corrupt_deflate_data_is_a_format_error() -> None:
    """zlib.error ('invalid distance too far back', ...) is not a zipfile error: every byte of a
    deflated member, damaged, must still give a FeatureFormatError naming that member."""
    feats = synthetic_features(2, keyframes=3)
    feats.frame_features = np.tile(np.arange(1280, dtype=np.float32) % 7, (3, 1))  # compressible
    good = record_zip(record_members(feats), zipfile.ZIP_DEFLATED)
    info = zipfile.ZipFile(io.BytesIO(good)).getinfo("frame_features.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    causes = set()
    for pos in range(start, start + info.compress_size):
        bad = bytearray(good)
        bad[pos] ^= 0x5A
        try:  # a flip in padding bits can leave the inflated bytes (and the CRC) unchanged
            VideoFeatures.from_bytes(bytes(bad))
        except FeatureFormatError as exc:
            assert str(exc).startswith("features.frame_features: ")
            causes.add(type(exc.__cause__).__name__)
    assert {"error", "BadZipFile"} <= causes  # zlib.error was met (and wrapped)


def test_member_stored_without_npy_suffix() -> None:
    """np.load hands such a member back as raw bytes, which crashed with AttributeError."""
    members = record_members()
    members["__meta__"] = b"raw, not an array"
    del members["__meta__.npy"]
    with pytest.raises(FeatureFormatError, match="__meta__"):
        VideoFeatures.from_bytes(record_zip(members))


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_only_stored_or_deflated_members_are_read(method: int) -> None:
    with pytest.raises(FeatureFormatError, match="compression method"):
        VideoFeatures.from_bytes(record_zip(record_members(), method))


def test_check_features_checks_every_per_frame_array() -> None:
    feats = synthetic_features(1, keyframes=2)
    feats.frame_top_classes = np.zeros((3, 5), np.int16)
    with pytest.raises(InvalidEventError, match="frame_top_classes differ in length"):
        check_features(feats)


def test_all_arrays_are_covered_by_the_specs() -> None:
    from vidsearch.encoders.features import ARRAY_SPECS

    assert set(ARRAY_SPECS) == set(ARRAYS)


# ---------------------------------------------------------------- OpenSearch bulk split

def test_split_bulk_keeps_order_and_budget() -> None:
    items = ['{"index":{}}\n{"t":"%s"}\n' % ("é" * n) for n in (10, 200, 3, 100, 100, 1)]
    sizes = [len(i.encode()) for i in items]
    assert sizes == [42, 422, 28, 222, 222, 24]
    bodies = split_bulk(items, 500)
    assert "".join(bodies) == "".join(items)
    assert [len(b.encode()) for b in bodies] == [492, 468]  # greedy, in order
    assert plan_bulk(sizes, 450) == [(0, 1), (1, 3), (3, 5), (5, 6)]  # 450 fits 422 + 28 exactly
    assert plan_bulk(sizes, 10**6) == [(0, 6)]
    assert plan_bulk([5, 5, 5], 10) == [(0, 2), (2, 3)]
    assert plan_bulk([], 10) == []


def test_split_bulk_refuses_an_item_over_the_budget() -> None:
    with pytest.raises(ValueError, match="item 1 of 11 bytes exceeds the 10-byte budget"):
        plan_bulk([3, 11, 2], 10)


class _FakeBulkClient:
    """Records every `_bulk` body and answers 201 per item (a fake for the pure split logic)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def bulk(self, body: bytes, request_timeout: float, wait_for_active_shards: str) -> dict[str, Any]:
        assert wait_for_active_shards == "1"  # opensearch.wait_for_active_shards, passed on every write
        self.bodies.append(body)
        lines = [json.loads(x) for x in body.decode().splitlines()]
        items = []
        for line in lines:
            action = next(iter(line))
            if action in ("index", "delete"):
                items.append({action: {"_id": line[action]["_id"], "status": 201}})
        return {"items": items}


def test_opensearch_store_splits_a_batch_and_refuses_an_oversized_document() -> None:
    from vidsearch.connector.documents import build_doc
    from vidsearch.plugins.opensearch.store import OpenSearchVideoStore

    settings = Settings(opensearch={"bulk_max_bytes": 64 * 1024}, indexer={"sinks": ("opensearch",)})
    client = _FakeBulkClient()
    store = OpenSearchVideoStore(settings, client=client)  # type: ignore[arg-type]
    store._ensured = {store.physical("default-v1")}  # no real index to create here
    docs = []
    for i in range(12):
        # ~49 kB per document (vectors and keyframes), ~89 kB with 20 000 two-byte characters
        event = parse_event(_upsert(video_id=f"v{i}", description="é" * 20_000 if i == 7 else "word " * 100), BIG)
        docs.append(build_doc(event, synthetic_features(i), "default-v1"))
    result = store.write("default-v1", docs)
    assert len(client.bodies) > 1 and all(len(b) <= 64 * 1024 for b in client.bodies)
    assert result.written == 11
    assert list(result.rejected) == ["v7"] and "exceeds opensearch.bulk_max_bytes=65536" in result.rejected["v7"]
    sent = [json.loads(line)["index"]["_id"] for b in client.bodies for line in b.decode().splitlines() if '"index"' in line[:10]]
    assert sent == [f"v{i}" for i in range(12) if i != 7]


# ---------------------------------------------------------------- dead letters

def _message(value: bytes | None, key: bytes | None = b"v1", headers: list[tuple[str, bytes]] | None = None) -> Message:
    return Message("videos", 3, 42, key, value, headers or [])


def test_dead_letter_under_the_limit_is_whole_and_says_so() -> None:
    value = b'{"op": "upsert"}'
    dl = DeadLetter(_message(value, headers=[("trace", b"abc")]), "InvalidEventError", "bad", "schema")
    headers = dict(dl.headers())
    assert dl.payload() == value and dl.key() == b"v1" and not dl.truncated
    assert headers["x-original-sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert headers["x-original-length"] == str(len(value)).encode()
    assert "x-truncated" not in headers and headers["trace"] == b"abc"


def test_dead_letter_over_the_limit_is_truncated_with_provenance() -> None:
    value = bytes(range(256)) * 8000  # 2 MB
    dl = DeadLetter(_message(value), "EventLimitError", "é" * 5000, "parse", max_bytes=900_000)
    headers = dict(dl.headers())
    assert dl.size() <= 900_000
    payload = dl.payload()
    assert payload is not None and value.startswith(payload) and len(payload) > 800_000
    assert headers["x-truncated"] == b"true" and dl.truncated
    assert headers["x-original-sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert headers["x-original-length"] == b"2048000"
    message = headers["x-error-message"]
    assert len(message) <= 4000 and message.decode("utf-8") == "é" * 2000  # cut on a character boundary


def test_dead_letter_bounds_a_huge_key_and_huge_headers() -> None:
    dl = DeadLetter(_message(b"x" * 10, key=b"k" * 500_000, headers=[("h", b"y" * 600_000), ("ok", b"1")]),
                    "InvalidEventError", "key mismatch", "validate", max_bytes=100_000)
    headers = dict(dl.headers())
    assert dl.size() <= 100_000 and dl.truncated
    assert "h" not in headers and headers["ok"] == b"1"
    assert dl.payload() == b"x" * 10


def test_dead_letter_of_a_replayed_dead_letter_does_not_duplicate_headers() -> None:
    first = DeadLetter(_message(b"v" * 10), "InvalidEventError", "one", "schema")
    again = DeadLetter(_message(b"v" * 10, headers=first.headers()), "InvalidEventError", "two", "schema")
    names = [k for k, _ in again.headers()]
    assert len(names) == len(set(names)) and dict(again.headers())["x-error-message"] == b"two"


def test_dead_letter_of_a_null_value() -> None:
    dl = DeadLetter(_message(None), "InvalidEventError", "empty message (null value)", "parse")
    assert dl.payload() is None and dict(dl.headers())["x-original-length"] == b"0"


def test_file_source_dead_letters_use_the_bounded_record(tmp_path: Any) -> None:
    from vidsearch.connector.sources.file import FileSource

    events = tmp_path / "events.jsonl"
    events.write_bytes(b"x" * 50_000 + b"\n")
    source = FileSource(events, tmp_path / "state")
    [msg] = source.poll(10, 0)
    source.dead_letter([DeadLetter(msg, "InvalidEventError", "bad", "parse", max_bytes=20_000)])
    [line] = source.dlq_file.read_text().splitlines()
    record = json.loads(line)
    assert record["truncated"] is True and record["original_length"] == 50_000
    assert record["original_sha256"] == hashlib.sha256(b"x" * 50_000).hexdigest()
    assert len(base64.b64decode(record["value_b64"])) < 20_000


def test_every_limit_error_is_a_data_error() -> None:
    for cls in (EventLimitError, FeatureLimitError, FeatureFormatError, InvalidEventError):
        assert issubclass(cls, DataError)
