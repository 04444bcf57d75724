"""`VideoFeatures`: the base features of one video, the expensive part, computed once.

The stores keep this record so a retrained fusion head re-embeds the catalogue without touching
media (DESIGN.md section 2). It serialises losslessly to one `.npz` (arrays stored bit-exact,
everything else as one JSON document inside it), with a format version so an old record is
recognised rather than misread.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.encoders.errors import EncoderError
from vidsearch.encoders.ocr import OcrLine
from vidsearch.encoders.speech import Segment

FORMAT_VERSION = 1
ARRAYS = ("keyframe_times", "frame_features", "frame_bridge", "frame_top_classes", "frame_top_probs",
          "text_metadata", "text_transcript", "text_ocr", "audio_vector")


class FeatureFormatError(EncoderError):
    """A serialised feature record is unreadable or of an unknown format version."""


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
    def from_bytes(cls, data: bytes) -> VideoFeatures:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                meta: dict[str, Any] = json.loads(npz["__meta__"].tobytes())
                arrays = {k: npz[k] for k in ARRAYS}
        except (ValueError, KeyError, TypeError, OSError, AttributeError, zipfile.BadZipFile) as exc:
            raise FeatureFormatError(f"not a VideoFeatures record: {exc}") from exc
        if not isinstance(meta, dict):
            raise FeatureFormatError("not a VideoFeatures record: metadata is not an object")
        version = meta.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise FeatureFormatError(f"unknown VideoFeatures format version {version!r} (this build reads {FORMAT_VERSION})")
        try:
            meta["transcript"] = [Segment(**s) for s in meta.get("transcript", [])]
            meta["ocr"] = [OcrLine(**o) for o in meta.get("ocr", [])]
            return cls(**meta, **arrays)
        except (TypeError, ValueError) as exc:
            raise FeatureFormatError(f"malformed VideoFeatures metadata: {exc}") from exc

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
            "has_audio": self.has_audio,
            "encoder_versions": self.encoder_versions,
        }
