"""OCR: RapidOCR (onnxruntime, weights inside the package) on keyframes, lines de-duplicated
across frames so a caption that stays on screen for a minute is indexed once, at its first time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from vidsearch.encoders.errors import MissingExtraError
from vidsearch.encoders.versioning import version_id


@dataclass(frozen=True)
class OcrLine:
    text: str
    t: float
    score: float


def line_key(text: str) -> str:
    """Case, spacing and punctuation do not make a line new."""
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def dedupe_lines(lines: list[OcrLine]) -> list[OcrLine]:
    """Keep the first occurrence in time of each distinct line (and its best-scored spelling)."""
    best: dict[str, OcrLine] = {}
    first_t: dict[str, float] = {}
    for line in sorted(lines, key=lambda x: x.t):
        key = line_key(line.text)
        if not key:
            continue
        first_t.setdefault(key, line.t)
        if key not in best or line.score > best[key].score:
            best[key] = line
    return sorted((OcrLine(b.text, first_t[k], b.score) for k, b in best.items()), key=lambda x: (x.t, x.text))


class RapidOcrReader:
    name = "rapidocr"

    def __init__(self, min_score: float = 0.5) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise MissingExtraError("rapidocr-onnxruntime") from exc
        self.engine = RapidOCR()
        self.min_score = min_score

    @cached_property
    def version(self) -> str:
        import rapidocr_onnxruntime

        models = sorted(Path(rapidocr_onnxruntime.__file__).parent.rglob("*.onnx"))
        return version_id(self.name, models, {"min_score": self.min_score})

    def read(self, rgb: np.ndarray, t: float = 0.0) -> list[OcrLine]:
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # RapidOCR follows OpenCV's BGR order
        result, _ = self.engine(bgr)
        return [OcrLine(str(text).strip(), t, float(score)) for _box, text, score in (result or []) if float(score) >= self.min_score]

    def read_frames(self, frames: list[tuple[float, np.ndarray]]) -> list[OcrLine]:
        lines: list[OcrLine] = []
        for t, rgb in frames:
            lines.extend(self.read(rgb, t))
        return dedupe_lines(lines)
