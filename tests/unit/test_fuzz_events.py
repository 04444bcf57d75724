"""Property-based fuzzing of the event gate: `parse_event`, then the precomputed-features branch of
`EventEncoder.base_features`, then the documents both stores would be sent.

Every generated input must be accepted or refused with a `DataError`; any other exception is a
crash that would dead-letter under a surprise class at best and stall a partition at worst.
Generated: raw bytes, random JSON of every shape and depth, strings with lone surrogates and
4-byte characters, invalid UTF-8 and UTF-16 encodings, base64 blobs, and feature records that
look valid but carry hostile `.npy` headers (huge or negative shapes, object, string, complex or
structured dtypes), mismatched row counts, extra or duplicate members and lying zip sizes.

Reproducible: derandomized, no example database; 4,300 examples in all (about 20 s on 2 cores).
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.unit.test_limits import encoder, lie_size, npy_member, npy_raw, record_members, record_zip
from vidsearch.connector.documents import build_doc
from vidsearch.connector.events import VideoUpsert, parse_event
from vidsearch.core.errors import DataError
from vidsearch.encoders.features import ARRAYS, VideoFeatures
from vidsearch.ops.bench.events import synthetic_features
from vidsearch.plugins.milvus.videos import to_row
from vidsearch.plugins.opensearch.videos import to_source

pytestmark = pytest.mark.unit

MAX_BYTES = 4 * 1024**2
ENCODER = encoder()
FUZZ = settings(deadline=None, database=None, derandomize=True, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


def _storable(event: VideoUpsert, feats: VideoFeatures) -> None:
    """What the sinks would send must serialise: strict JSON (no NaN), valid UTF-8."""
    ENCODER.apply_metadata([(event, feats)])
    doc = build_doc(event, feats, "default-v1")
    json.dumps(to_source(doc), allow_nan=False, ensure_ascii=False, default=lambda a: a.tolist()).encode("utf-8")
    row = to_row(doc)
    json.dumps(row, allow_nan=False, ensure_ascii=False).encode("utf-8")
    json.loads(row["meta"])
    assert -(2**63) <= row["version"] < 2**63 and -(2**63) <= row["published_at"] < 2**63


def gate(raw: bytes | None) -> str:
    """The property: accepted, or refused with a DataError. Anything else propagates and fails."""
    try:
        event = parse_event(raw, MAX_BYTES)
    except DataError:
        return "refused"
    if not isinstance(event, VideoUpsert):
        return "delete"
    if event.features is None:
        _storable(event, synthetic_features(0))
        return "media"
    try:
        feats = ENCODER.base_features(event)
    except DataError:
        return "refused-features"
    _storable(event, feats)
    return "features"


# ------------------------------------------------------------------ strategies

def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Pick a strategy with the given weights (one_of would drop repeated branches)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


SURROGATES = st.sampled_from(["\ud800", "\udfff", "\ud83d", "a\udc00b"])
TEXT = weighted(
    (12, st.text(st.characters(codec="utf-8"), max_size=40)),
    (1, st.text(st.characters(codec=None, exclude_categories=()), max_size=40)),  # lone surrogates too
    (2, st.text(st.sampled_from("aé日😀\u0000\n\"\\"), min_size=0, max_size=1200)),
    (1, SURROGATES),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, 2**63, -1, 0, 10**4300 // 10**4290]),
    st.floats(allow_nan=False, allow_infinity=False),
)
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
DATES = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:00", "0001-01-01T00:00:00", "2024-02-30", "", 1e12, -1]),
    TEXT,
)


def _field(plausible: st.SearchStrategy[Any], weird: st.SearchStrategy[Any] = JSON, weight: int = 6) -> st.SearchStrategy[Any]:
    """Mostly a plausible value (`weight` to 1), sometimes anything at all, sometimes absent."""
    return weighted((weight, plausible), (1, weird), (1, st.just(DROP)))


DROP = object()
ID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,20}", fullmatch=True)
PLAIN_TEXT = st.text(st.characters(codec="utf-8"), max_size=60)
VALID_RECORDS = st.builds(lambda seed, k: _b64(record_zip(_members(seed, k))), st.integers(0, 5), st.integers(0, 3))


@st.composite
def events(draw: st.DrawFn) -> Any:
    ev: dict[str, Any] = {}
    candidates = {
        "schema_version": _field(st.just(1), st.one_of(st.sampled_from([2, "1", 1.0, True]), JSON), weight=12),
        "op": _field(st.sampled_from(["upsert", "upsert", "upsert", "delete"]), st.one_of(st.just("merge"), JSON), weight=12),
        "video_id": _field(ID, st.one_of(TEXT, st.just("v" * 257)), weight=12),
        "version": _field(st.integers(0, 2**63 - 1), NUMBERS),
        "updated_at": _field(DATES, weight=1),
        "title": _field(PLAIN_TEXT, TEXT),
        "description": _field(PLAIN_TEXT, TEXT),
        "tags": _field(st.lists(st.text(max_size=20), max_size=5), st.lists(TEXT, max_size=5)),
        "language": _field(st.sampled_from(["en", "de-CH"]), st.sampled_from(["日本語日本語", "x" * 17, 5])),
        "duration": _field(st.floats(0, 1e6), NUMBERS),
        "published_at": _field(st.datetimes().map(lambda d: d.isoformat()), DATES),
        "media_uri": _field(st.just("/videos/a.mp4"), TEXT, weight=2),
        "features": _field(st.one_of(VALID_RECORDS, st.just("AA==")), st.sampled_from(["not base64!!", "", "é", "AA"])),
    }
    for name, strategy in candidates.items():
        value = draw(strategy)
        if value is not DROP:
            ev[name] = value
    ev.update(draw(st.dictionaries(st.text(max_size=20), JSON, max_size=3)))  # pass-through fields
    if draw(st.integers(0, 9)) == 0:
        ev.update(draw(st.dictionaries(TEXT, JSON, max_size=2)))  # with hostile keys too
    return ev


@st.composite
def encoded(draw: st.DrawFn, value: Any) -> bytes:
    """JSON text in a random encoding: escaped or raw (surrogates as invalid UTF-8), UTF-16,
    or with bytes flipped."""
    ascii_only = draw(st.booleans())
    text = json.dumps(value, ensure_ascii=ascii_only)
    how = draw(st.sampled_from(["utf8"] * 6 + ["utf16", "flip"]))
    if how == "utf16":
        return text.encode("utf-16", "surrogatepass")
    raw = bytearray(text.encode("utf-8", "surrogatepass"))
    if how == "flip" and raw:
        for pos in draw(st.lists(st.integers(0, len(raw) - 1), max_size=3)):
            raw[pos] = draw(st.integers(0, 255))
    return bytes(raw)


DESCRS = st.sampled_from(["<f4", "<f8", "<f2", ">f4", "<i2", "<i8", "|u1", "|b1", "<c8", "<f16", "|O", "<U4", "|S3",
                          "<M8[s]", "|V8", [("a", "<f4")], ("<f4", (1000, 1000)), ("<f4", (2**40,)), 7, None, "zz"])
SHAPES = st.one_of(
    st.tuples(st.integers(0, 4), st.sampled_from([384, 1280, 5, 0, 383])),
    st.tuples(st.integers(0, 4)),
    st.tuples(st.sampled_from([10**6, 2**31, 2**62, 10**30, -1]), st.sampled_from([1280, 384, 1])),
    st.tuples(),
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
    st.sampled_from([[2, 384], "(2, 384)", (2.0, 384), (True, 384)]),
)


@st.composite
def hostile_member(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["header", "header", "header", "rawtext", "bytes", "pickled"]))
    if kind == "header":
        shape = draw(SHAPES)
        descr = draw(DESCRS)
        try:
            size = int(np.prod(shape)) * np.dtype(descr).itemsize if isinstance(shape, tuple) else 0
        except (TypeError, ValueError, OverflowError):
            size = 0
        if not 0 <= size <= 64 * 1024:
            size = draw(st.integers(0, 4096))
        size += draw(st.sampled_from([0, 0, 0, -1, 1, -4]))
        return npy_member(descr, shape, bytes(max(size, 0)), fortran=draw(st.sampled_from([False, True, 1, "no"])))
    if kind == "rawtext":
        return npy_raw(draw(st.one_of(TEXT, st.just("(" * 5000), st.just("{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1," * 40 + ")}"))),
                       version=draw(st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\x09\x09"])))
    if kind == "pickled":
        buf = io.BytesIO()
        np.save(buf, np.array([1, "a", None], dtype=object), allow_pickle=True)
        return buf.getvalue()
    return draw(st.binary(max_size=300))


@st.composite
def feature_records(draw: st.DrawFn) -> bytes:
    """A valid record with a few hostile changes, zipped in a random way."""
    keyframes = draw(st.integers(0, 4))
    members = _members(draw(st.integers(0, 20)), keyframes)
    names = [f"{n}.npy" for n in ARRAYS] + ["__meta__.npy"]
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["replace", "replace", "drop", "add", "rows", "meta"]))
        name = draw(st.sampled_from(names))
        if action == "replace":
            members[name] = draw(hostile_member())
        elif action == "drop":
            members.pop(name, None)
        elif action == "add":
            members[draw(st.sampled_from(["extra.npy", "x", "../evil.npy", "__meta__"]))] = draw(hostile_member())
        elif action == "rows":
            members[name] = npy_member("<f4", (keyframes + draw(st.sampled_from([1, -1, 5])), 384), bytes(4 * 384 * (keyframes + 5)))
        else:
            meta = draw(st.dictionaries(st.sampled_from(["video_id", "format_version", "transcript", "ocr", "tags", "duration_s", "has_audio", "encoder_versions", "bogus"]),
                                        JSON, max_size=5))
            meta.setdefault("format_version", 1)
            body = json.dumps(meta, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
            members["__meta__.npy"] = npy_member("|u1", (len(body),), body)
    buf = io.BytesIO()
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))  # bzip2/lzma: see test_limits
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    record = buf.getvalue()
    if members and draw(st.integers(0, 3)) == 0:  # lie about a member's size
        record = lie_size(record, draw(st.sampled_from(sorted(members))), draw(st.sampled_from([0, 1, 100, 2**20, 2**31, 2**32 - 1])))
    if draw(st.integers(0, 5)) == 0:  # truncate or flip bytes
        cut = draw(st.integers(0, len(record)))
        record = record[:cut] if draw(st.booleans()) else record[:cut] + bytes([draw(st.integers(0, 255))]) + record[cut + 1:]
    return record


@cache
def _valid_members(seed: int, keyframes: int) -> tuple[tuple[str, bytes], ...]:
    return tuple(record_members(synthetic_features(seed, keyframes=keyframes)).items())


def _members(seed: int, keyframes: int) -> dict[str, bytes]:
    return dict(_valid_members(seed, keyframes))


def _b64(record: bytes) -> str:
    return base64.b64encode(record).decode()


# ------------------------------------------------------------------ the fuzzers

@settings(FUZZ, max_examples=800)
@given(st.one_of(st.binary(max_size=300), st.none()))
@example(b"[" * 100_000)
@example(b'{"schema_version": 1, "op": "upsert", "video_id": "a", "version": 1, "features": "AA==", "x": 1e999}')
@example(b'\xff\xfe{\x00}\x00')
def test_fuzz_raw_bytes(raw: bytes | None) -> None:
    assert gate(raw) in {"refused", "delete", "media", "features", "refused-features"}


@settings(FUZZ, max_examples=1500)
@given(events().flatmap(encoded))
# Regressions: inputs the first gate let through to crash later in a store's client or document
# builder (UnicodeEncodeError, ValueError 'year 0 is out of range', int64 overflow, float32 inf),
# or crashed on itself.
@example(b'{"schema_version": 1, "op": "upsert", "video_id": "a", "version": 9223372036854775808, "features": "AA=="}')
@example(b'{"schema_version": 1, "op": "upsert", "video_id": "a", "title": "\\ud800", "version": 1, "features": "AA=="}')
@example(b'{"schema_version": 1, "op": "upsert", "video_id": "a", "version": 1, "media_uri": "/x", "published_at": "0001-01-01T00:00:00"}')
@example(b'{"schema_version": 1, "op": "upsert", "video_id": "a", "updated_at": "0001-01-01T00:00:00+01:00", "features": "AA=="}')
@example(b'{"schema_version": 1, "op": "upsert", "video_id": "a", "version": 1, "features": "AA==", "d": ' + b"[" * 900 + b"]" * 900 + b"}")
@example(b'{"schema_version": 1, "op": "upsert", "video_id": "a", "version": 1, "duration": 1e300, "media_uri": "/x"}')
def test_fuzz_json_events(raw: bytes) -> None:
    assert gate(raw) in {"refused", "delete", "media", "features", "refused-features"}


OTHER_FIELDS = st.fixed_dictionaries({}, optional={"title": TEXT, "tags": st.lists(TEXT, max_size=3), "duration": NUMBERS,
                                                   "published_at": DATES, "language": TEXT, "x": JSON})


@settings(FUZZ, max_examples=2000)
@given(OTHER_FIELDS, feature_records(), st.booleans())
def test_fuzz_feature_records(other: dict[str, Any], record: bytes, plain: bool) -> None:
    event = {"schema_version": 1, "op": "upsert", "video_id": "v1", "version": 1, "features": _b64(record)}
    if not plain:  # plain: only the feature record is hostile, the rest of the event is valid
        event = {**other, **event}
    outcome = gate(json.dumps(event).encode())
    assert outcome in {"refused", "features", "refused-features"}
    if plain and record:  # an empty record is an upsert without content: refused by the schema
        assert outcome != "refused"  # the event itself was valid; only its record may be refused


def test_fuzzers_reach_acceptance() -> None:
    """The strategies are not so hostile that nothing ever passes (then the fuzz proves little)."""
    valid = json.dumps({"schema_version": 1, "op": "upsert", "video_id": "v1", "version": 1,
                        "features": _b64(synthetic_features(2).to_bytes())}).encode()
    assert gate(valid) == "features"
    members = record_members(synthetic_features(3, keyframes=3))
    members["frame_top_classes.npy"] = npy_member("<i8", (3, 5), bytes(3 * 5 * 8))  # another legal int type
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    event = {"schema_version": 1, "op": "upsert", "video_id": "v1", "version": 1, "features": _b64(buf.getvalue())}
    assert gate(json.dumps(event).encode()) == "features"
