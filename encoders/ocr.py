"""OCR: RapidOCR (onnxruntime, weights inside the package) on keyframes, lines de-duplicated
across frames so a caption that stays on screen for a minute is indexed once, at its first time.

Most keyframes hold no text, yet RapidOCR's detector upsamples every frame until its short side is
736 px (~200 ms a frame on 2 cores, whether or not anything is written on it). A text-presence gate
runs the same detector on the frame shrunk to a short side of `gate_side` px (~15x fewer pixels) and
only frames it flags get the full pass. Recognition then runs once over the text lines of all
flagged frames of the video, so its batches fill up instead of holding one frame's two lines.
`vidsearch bench ocr` measures the gate's recall on frames with known text and what it saves.
"""

from __future__ import annotations

import copy
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


# Recognition batch across a video's flagged frames (RapidOCR's default is 6 crops).
REC_BATCH = 16


class RapidOcrReader:
    """RapidOCR's detector, angle classifier and recogniser, driven frame set by frame set.

    `read_frames` follows `RapidOCR.__call__` step for step (resize limits, letterbox, detect, crop,
    classify, recognise, score filter) but splits detection from recognition so the gate can skip
    frames and recognition can batch across frames; `read` is the plain per-frame call, kept as the
    reference the gate is measured against.
    """

    name = "rapidocr"

    def __init__(self, min_score: float = 0.5, gate_side: int = 320, gate_box_thresh: float = 0.3) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise MissingExtraError("rapidocr-onnxruntime") from exc
        self.engine = RapidOCR()
        self.engine.text_rec.rec_batch_num = REC_BATCH
        self.engine.text_cls.cls_batch_num = REC_BATCH
        self.min_score = min_score
        self.gate_side = gate_side
        self.gate_box_thresh = gate_box_thresh
        self._gate = None
        if gate_side > 0:
            # A shallow copy shares the detector's onnxruntime session (no second model in memory)
            # and only changes the resize target and the box threshold (lower: recall first).
            from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess

            self._gate = copy.copy(self.engine.text_det)
            self._gate.limit_side_len, self._gate.limit_type = gate_side, "min"
            self._gate.postprocess_op = DBPostProcess(box_thresh=gate_box_thresh, unclip_ratio=1.6, use_dilation=True)

    @cached_property
    def version(self) -> str:
        import rapidocr_onnxruntime

        models = sorted(Path(rapidocr_onnxruntime.__file__).parent.rglob("*.onnx"))
        params = {"min_score": self.min_score}
        if self.gate_side > 0:
            params |= {"gate_side": self.gate_side, "gate_box_thresh": self.gate_box_thresh}
        return version_id(self.name, models, params)

    def read(self, rgb: np.ndarray, t: float = 0.0) -> list[OcrLine]:
        """One frame, ungated, exactly as RapidOCR reads it."""
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # RapidOCR follows OpenCV's BGR order
        result, _ = self.engine(bgr)
        return [OcrLine(str(text).strip(), t, float(score)) for _box, text, score in (result or []) if float(score) >= self.min_score]

    def has_text(self, rgb: np.ndarray) -> bool:
        """The gate's verdict; True for every frame when the gate is off."""
        if self._gate is None:
            return True
        import cv2

        h, w = rgb.shape[:2]
        scale = self.gate_side / min(h, w)
        small = rgb if scale >= 1 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        boxes, _ = self._gate(np.ascontiguousarray(small[..., ::-1]))
        return boxes is not None and len(boxes) > 0

    def _crops(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Detected text lines of one frame, cropped and deskewed (RapidOCR's own steps)."""
        eng = self.engine
        img, _, _ = eng.preprocess(np.ascontiguousarray(rgb[..., ::-1]))
        img, _ = eng.maybe_add_letterbox(img, {})
        boxes, _ = eng.auto_text_det(img)
        return [] if boxes is None else eng.get_crop_img_list(img, boxes)

    def read_frames(self, frames: list[tuple[float, np.ndarray]]) -> list[OcrLine]:
        crops: list[np.ndarray] = []
        times: list[float] = []
        for t, rgb in frames:
            if self.has_text(rgb):
                found = self._crops(rgb)
                crops += found
                times += [t] * len(found)
        if not crops:
            return []
        crops, _, _ = self.engine.text_cls(crops)
        recognised, _ = self.engine.text_rec(crops, False)
        floor = max(self.min_score, self.engine.text_score)
        lines = [OcrLine(str(r[0]).strip(), t, float(r[1])) for t, r in zip(times, recognised, strict=True) if float(r[1]) >= floor]
        return dedupe_lines(lines)
