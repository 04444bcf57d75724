"""`VideoFeatures`: the base features of one video, the expensive part, computed once.

The stores keep this record so a retrained fusion head re-embeds the catalogue without touching
media. It serialises losslessly to one `.npz` (arrays stored bit-exact, everything else as one
JSON document inside it), with a format version so an old record is recognised rather than
misread.

A record may arrive from an untrusted producer (base64 inside a video event), so reading one
never trusts it: every zip member's declared size and every `.npy` header (shape, dtype) is
checked against `FeatureLimits` before a byte of array data is inflated or allocated. Reading
raises only `FeatureFormatError` (or its `FeatureLimitError`), never MemoryError or TypeError.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import struct
import warnings
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import numpy as np
from numpy.lib import format as npy_format
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from vidsearch.core.errors import DataError
from vidsearch.encoders.errors import EncoderError
from vidsearch.encoders.ocr import OcrLine
from vidsearch.encoders.speech import Segment

FORMAT_VERSION = 1
ARRAYS = ("keyframe_times", "frame_features", "frame_bridge", "frame_top_classes", "frame_top_probs",
          "text_metadata", "text_transcript", "text_ocr", "audio_vector")
META = "__meta__"
# name -> (number of dimensions, allowed dtype kinds, rows must equal the keyframe count)
ARRAY_SPECS: dict[str, tuple[int, str, bool]] = {
    "keyframe_times": (1, "f", True),
    "frame_features": (2, "f", True),
    "frame_bridge": (2, "f", True),
    "frame_top_classes": (2, "iu", True),  # ImageNet class indices
    "frame_top_probs": (2, "f", True),
    "text_metadata": (1, "f", False),
    "text_transcript": (1, "f", False),
    "text_ocr": (1, "f", False),
    "audio_vector": (1, "f", False),
}
FLOAT_SIZES = (2, 4, 8)  # f2/f4/f8; no long double, no complex
INT_SIZES = (1, 2, 4, 8)
NPY_MAX_HEADER = 10_000  # numpy's own default for untrusted files
CD_ENTRY_MAX = 1_024  # bytes of zip directory per member: 46 fixed + a short name + small extras
MAX_SHOTS = 4_096  # the decoder finds at most one per sampled candidate (media.keyframe_max_candidates)


class FeatureFormatError(EncoderError, DataError):
    """A serialised feature record is unreadable or of an unknown format version."""

    stage = "features"


class FeatureLimitError(FeatureFormatError):
    """A feature record is (or declares itself) larger than `FeatureLimits` allow."""


@dataclass(frozen=True)
class FeatureLimits:
    """What one record may make the reader allocate (bytes are inflated sizes). The indexer
    builds these from `indexer.limits`; the defaults suit records this package writes."""

    max_bytes: int = 64 * 1024**2  # all members together
    max_array_bytes: int = 32 * 1024**2  # one array
    max_meta_bytes: int = 8 * 1024**2  # the JSON metadata member
    max_keyframes: int = 1024
    max_members: int = 16  # a record has len(ARRAYS) + 1


@dataclass(frozen=True)
class _Header:
    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype
    nbytes: int
    data_offset: int = 0  # where the data starts in the member: read once, skipped on the second open


class _SegmentMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: float = Field(allow_inf_nan=False)
    end: float = Field(allow_inf_nan=False)
    text: str


class _OcrMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    t: float = Field(allow_inf_nan=False)
    score: float = Field(allow_inf_nan=False)


Bound = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def _ordered(shot: tuple[float, float]) -> tuple[float, float]:
    if shot[1] < shot[0]:
        raise ValueError(f"a shot ends before it starts: {list(shot)}")
    return shot


class _Meta(BaseModel):
    """The JSON member: typed here so a string where a list belongs fails now, not in a sink."""

    model_config = ConfigDict(extra="forbid")
    video_id: str
    source: str = ""
    duration_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    title: str = ""
    description: str = ""
    tags: list[str] = []
    transcript: list[_SegmentMeta] = []
    ocr: list[_OcrMeta] = []
    # Added after format version 1 was first written: a record without it (no shot detection)
    # reads as no shots, and moments fall back to keyframe windows.
    shots: list[Annotated[tuple[Bound, Bound], AfterValidator(_ordered)]] = Field(default=[], max_length=MAX_SHOTS)
    has_audio: bool = False
    encoder_versions: dict[str, str] = {}


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _read_header(fp: IO[bytes], name: str) -> _Header:
    """The `.npy` header of one member, read with numpy's own parser (bounded header size)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on Python-2 style headers
            version = npy_format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(fp, max_header_size=NPY_MAX_HEADER)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(fp, max_header_size=NPY_MAX_HEADER)
            else:
                raise FeatureFormatError(f"features.{name}: unsupported .npy version {version}")
    except FeatureFormatError:
        raise
    # numpy parses the header text with ast and builds a dtype from it; on hostile text that can
    # fail in many ways (ValueError, TypeError, RecursionError, MemoryError, ...): all mean the
    # same thing here.
    except Exception as exc:  # noqa: BLE001
        raise FeatureFormatError(f"features.{name}: unreadable .npy header: {type(exc).__name__}: {str(exc)[:200]}") from exc
    if any(d < 0 for d in shape):
        raise FeatureFormatError(f"features.{name}: negative dimension in shape {shape}")
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise FeatureFormatError(f"features.{name}: dtype {dtype} is not a plain number type")
    return _Header(tuple(shape), bool(fortran), dtype, math.prod(shape) * dtype.itemsize)


def _check_dtype(name: str, dtype: np.dtype, kinds: str) -> None:
    sizes = FLOAT_SIZES if dtype.kind == "f" else INT_SIZES
    if dtype.kind not in kinds or dtype.itemsize not in sizes:
        want = "a float array (f2/f4/f8)" if kinds == "f" else "an integer array"
        raise FeatureFormatError(f"features.{name}: dtype {dtype} is not allowed, expected {want}")


def _central_directory_size(data: bytes) -> int | None:
    """The central-directory size the end record declares (zip64 too), read before zipfile parses
    the directory: zipfile builds an object per entry, so a few MB of empty entries would cost
    seconds and hundreds of MB before `max_members` could be checked. Hand-rolled because
    zipfile's own reader of this record is private; layout per PKWARE APPNOTE 4.3.14-16."""
    pos = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65_535))
    if pos < 0 or pos + 22 > len(data):
        return None  # not a zip: zipfile says so
    size = int(struct.unpack_from("<I", data, pos + 12)[0])
    locator = pos - 20
    if size == 0xFFFFFFFF and locator >= 0 and data[locator:locator + 4] == b"PK\x06\x07":
        start = int(struct.unpack_from("<Q", data, locator + 8)[0])
        if start + 56 <= len(data) and data[start:start + 4] == b"PK\x06\x06":
            size = int(struct.unpack_from("<Q", data, start + 40)[0])
    return size


class _RecordReader:
    """Two passes over the zip: every header first (cheap, nothing allocated), then the data."""

    def __init__(self, data: bytes, limits: FeatureLimits) -> None:
        self.limits = limits
        if len(data) > limits.max_bytes:
            raise FeatureLimitError(f"feature record of {len(data)} bytes exceeds the {limits.max_bytes}-byte limit")
        directory = _central_directory_size(data)
        if directory is not None and directory > limits.max_members * CD_ENTRY_MAX:
            raise FeatureLimitError(f"feature record's zip directory of {directory} bytes is too large for {limits.max_members} members")
        try:
            self.zf = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zf.infolist()
        # zipfile parses an untrusted central directory here; whatever it raises on one it
        # cannot make sense of (BadZipFile, struct or overflow errors, ...) means the same thing.
        except Exception as exc:  # noqa: BLE001
            raise FeatureFormatError(f"not a VideoFeatures record: {type(exc).__name__}: {str(exc)[:200]}") from exc
        if len(infos) > limits.max_members:
            raise FeatureLimitError(f"feature record has {len(infos)} members, more than {limits.max_members}")
        self.members: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if key in self.members:
                raise FeatureFormatError(f"not a VideoFeatures record: member {key!r} appears twice")
            if info.flag_bits & 0x1:
                raise FeatureFormatError(f"features.{key}: encrypted zip members are not allowed")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise FeatureFormatError(f"features.{key}: zip compression method {info.compress_type} is not allowed")
            cap = limits.max_meta_bytes if key == META else limits.max_array_bytes
            # The declared uncompressed size bounds what reading can inflate (zipfile stops there
            # and then fails the CRC), so checking it here defeats decompression bombs.
            if info.file_size > cap + NPY_MAX_HEADER + 64:
                raise FeatureLimitError(f"features.{key}: member declares {info.file_size} bytes, over the {cap}-byte limit")
            total += info.file_size
            self.members[key] = info
        if total > limits.max_bytes + len(infos) * (NPY_MAX_HEADER + 64):
            raise FeatureLimitError(f"feature record declares {total} bytes in all, over the {limits.max_bytes}-byte limit")

    def _open(self, key: str) -> IO[bytes]:
        info = self.members.get(key)
        if info is None:
            raise FeatureFormatError(f"not a VideoFeatures record: member {key!r} is missing")
        try:
            return self.zf.open(info)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
            raise FeatureFormatError(f"features.{key}: cannot open member: {str(exc)[:200]}") from exc

    def header(self, key: str) -> _Header:
        with self._open(key) as fp:
            head = dataclasses.replace(_read_header(fp, key), data_offset=fp.tell())
            size = self.members[key].file_size - head.data_offset
        cap = self.limits.max_meta_bytes if key == META else self.limits.max_array_bytes
        if head.nbytes > cap:
            raise FeatureLimitError(f"features.{key}: shape {head.shape} of {head.dtype} is {head.nbytes} bytes, over the {cap}-byte limit")
        if head.nbytes != size:
            raise FeatureFormatError(f"features.{key}: header says {head.nbytes} data bytes, the member holds {size}")
        return head

    def array(self, key: str, head: _Header) -> np.ndarray:
        try:
            with self._open(key) as fp:
                if len(fp.read(head.data_offset)) != head.data_offset:  # the header checked by header()
                    raise FeatureFormatError(f"features.{key}: member shorter than its header")
                buf = fp.read(head.nbytes)
                if len(buf) != head.nbytes or fp.read(1):  # the last read also checks the CRC
                    raise FeatureFormatError(f"features.{key}: member length does not match its header")
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:  # zlib.error: corrupt deflate data
            raise FeatureFormatError(f"features.{key}: damaged member: {type(exc).__name__}: {str(exc)[:200]}") from exc
        arr = np.frombuffer(bytearray(buf), dtype=head.dtype)  # bytearray: a writable copy
        arr = arr.reshape(head.shape, order="F" if head.fortran_order else "C")
        return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))

    def meta(self) -> dict[str, Any]:
        head = self.header(META)
        if head.dtype != np.uint8 or len(head.shape) != 1:
            raise FeatureFormatError(f"features.{META}: expected 1-d uint8, got {head.dtype} {head.shape}")
        raw = self.array(META, head).tobytes()
        try:
            meta = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise FeatureFormatError(f"not a VideoFeatures record: metadata is not JSON: {str(exc)[:200]}") from exc
        if not isinstance(meta, dict):
            raise FeatureFormatError("not a VideoFeatures record: metadata is not an object")
        try:  # JSON escapes can smuggle in lone surrogates, which no store can encode
            json.dumps(meta, ensure_ascii=False).encode("utf-8")
        except (UnicodeEncodeError, RecursionError, ValueError) as exc:
            raise FeatureFormatError(f"features.{META}: text is not valid Unicode: {str(exc)[:200]}") from exc
        return meta

    def arrays(self) -> dict[str, np.ndarray]:
        unknown = sorted(set(self.members) - {META, *ARRAYS})
        if unknown:
            raise FeatureFormatError(f"not a VideoFeatures record: unexpected members {unknown[:5]}")
        heads = {name: self.header(name) for name in ARRAYS}
        keyframes = heads["keyframe_times"].shape[0] if heads["keyframe_times"].shape else 0
        if keyframes > self.limits.max_keyframes:
            raise FeatureLimitError(f"features: {keyframes} keyframes, more than the limit of {self.limits.max_keyframes}")
        total = 0
        for name, (ndim, kinds, per_frame) in ARRAY_SPECS.items():
            head = heads[name]
            _check_dtype(name, head.dtype, kinds)
            if len(head.shape) != ndim:
                raise FeatureFormatError(f"features.{name} has shape {head.shape}, expected {ndim}-d")
            if per_frame and head.shape[0] != keyframes:
                raise FeatureFormatError(f"features.{name} has {head.shape[0]} rows for {keyframes} keyframes")
            total += head.nbytes
        if total > self.limits.max_bytes:
            raise FeatureLimitError(f"features: arrays of {total} bytes in all, over the {self.limits.max_bytes}-byte limit")
        return {name: self.array(name, heads[name]) for name in ARRAYS}


def shot_at(shots: list[tuple[float, float]], t: float) -> tuple[float, float] | None:
    """The shot whose [start, end) holds `t`; the last shot for t at or past its end, the first
    for t before 0; None without shots."""
    if not shots:
        return None
    for start, end in shots:
        if start <= t < end:
            return (start, end)
    return shots[-1] if t >= shots[-1][0] else shots[0]


@dataclass
class VideoFeatures:
    video_id: str
    source: str = ""
    duration_s: float = 0.0
    title: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)
    transcript: list[Segment] = field(default_factory=list)
    ocr: list[OcrLine] = field(default_factory=list)
    keyframe_times: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    frame_features: np.ndarray = field(default_factory=lambda: np.zeros((0, 1280), np.float32))
    frame_bridge: np.ndarray = field(default_factory=lambda: np.zeros((0, 384), np.float32))
    frame_top_classes: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), np.int16))
    frame_top_probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), np.float32))
    text_metadata: np.ndarray = field(default_factory=lambda: np.zeros(384, np.float32))
    text_transcript: np.ndarray = field(default_factory=lambda: np.zeros(384, np.float32))
    text_ocr: np.ndarray = field(default_factory=lambda: np.zeros(384, np.float32))
    audio_vector: np.ndarray = field(default_factory=lambda: np.zeros(384, np.float32))
    has_audio: bool = False
    encoder_versions: dict[str, str] = field(default_factory=dict)
    shots: list[tuple[float, float]] = field(default_factory=list)  # (start, end) between hard cuts

    def shot_at(self, t: float) -> tuple[float, float] | None:
        """The shot holding time `t` (the last one for t at or past the end); None without shots."""
        return shot_at(self.shots, t)

    @property
    def transcript_text(self) -> str:
        return " ".join(s.text for s in self.transcript)

    @property
    def ocr_text(self) -> str:
        return " ".join(line.text for line in self.ocr)

    @property
    def metadata_text(self) -> str:
        return " ".join(x for x in (self.title, self.description, " ".join(self.tags)) if x)

    def to_bytes(self) -> bytes:
        meta = {k: v for k, v in asdict(self).items() if k not in ARRAYS}
        meta["format_version"] = FORMAT_VERSION
        buf = io.BytesIO()
        np.savez(buf, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                 **{k: getattr(self, k) for k in ARRAYS})
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, limits: FeatureLimits | None = None) -> VideoFeatures:
        """Read a record, checking every declared size, shape and dtype before allocating."""
        reader = _RecordReader(data, limits or FeatureLimits())
        meta = reader.meta()
        version = meta.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise FeatureFormatError(f"unknown VideoFeatures format version {version!r} (this build reads {FORMAT_VERSION})")
        # Keyed by field name at run time, so the arrays go to the constructor as keywords.
        arrays: dict[str, Any] = reader.arrays()
        try:
            parsed = _Meta.model_validate(meta)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise FeatureFormatError(f"malformed VideoFeatures metadata: {where}: {first['msg']}") from exc
        fields = parsed.model_dump(exclude={"transcript", "ocr", "shots"})
        return cls(**fields, **arrays, shots=[(float(a), float(b)) for a, b in parsed.shots],
                   transcript=[Segment(s.start, s.end, s.text) for s in parsed.transcript],
                   ocr=[OcrLine(o.text, o.t, o.score) for o in parsed.ocr])

    def save(self, path: Path) -> None:
        path.write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> VideoFeatures:
        return cls.from_bytes(path.read_bytes())

    def summary(self) -> dict[str, Any]:
        """What `vidsearch encode --json` prints per file."""
        return {
            "video_id": self.video_id,
            "source": self.source,
            "duration_s": round(self.duration_s, 3),
            "keyframes": len(self.keyframe_times),
            "keyframe_times": [round(float(t), 3) for t in self.keyframe_times],
            "dims": {
                "frame_features": int(self.frame_features.shape[1]),
                "frame_bridge": int(self.frame_bridge.shape[1]),
                "text": int(self.text_metadata.shape[0]),
                "audio": int(self.audio_vector.shape[0]),
            },
            "transcript": [asdict(s) for s in self.transcript],
            "ocr": [asdict(o) for o in self.ocr],
            "shots": [[round(a, 3), round(b, 3)] for a, b in self.shots],
            "has_audio": self.has_audio,
            "encoder_versions": self.encoder_versions,
        }
