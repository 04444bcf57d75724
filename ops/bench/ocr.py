"""`vidsearch bench ocr`: does the OCR text-presence gate miss text, and what does it save?

Frames with known text are made from real keyframes (the packaged clips, shown at the sizes videos
come in) with a Tux Paint caption drawn on them: size, colour, outline or box, and position vary.
Captions of the validation split choose the gate's size; the test split's captions report it, so
the choice never sees the frames it is judged on. The clips' own frames, untouched, are the frames
without text, and the few of them where ungated OCR reads something count as real text frames.

Per gate size: recall of the gate on text frames (all, and those the full OCR can read at all),
caption-word recall of gated OCR against ungated, the share of plain keyframes it flags, and the
milliseconds per frame, always against the ungated reader in the same run.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidsearch.core.settings import Settings

# (short side in px, box threshold) pairs tried on validation: smaller sides are cheaper, a lower
# box threshold keeps faint or thin text that the shrunken frame blurs.
GATES = ((192, 0.15), (256, 0.3), (256, 0.15), (320, 0.3), (320, 0.15))
SIZES = ((176, 144), (320, 240), (640, 360), (1280, 720))
RECALL_BAR = 0.99  # of the frames the full OCR can read, the gate must flag this share
WORD_BAR = 0.01  # and caption-word recall may fall by at most this much


@dataclass(frozen=True)
class TextFrame:
    rgb: np.ndarray
    words: frozenset[str]


def words(text: str) -> frozenset[str]:
    return frozenset(w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 1)


def draw_caption(rgb: np.ndarray, caption: str, rng: random.Random) -> np.ndarray:
    """`caption` over the frame the way videos carry text: subtitle, title card or sign."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.fromarray(rgb).convert("RGB")
    w, h = img.size
    font = ImageFont.load_default(size=max(9, round(h * rng.choice((0.045, 0.06, 0.08, 0.11)))))
    draw = ImageDraw.Draw(img)
    while caption and draw.textlength(caption, font=font) > 0.92 * w:
        caption = caption.rsplit(" ", 1)[0] if " " in caption else caption[:-1]
    box = draw.textbbox((0, 0), caption, font=font)
    tw, th = int(box[2] - box[0]), int(box[3] - box[1])
    x = rng.randint(0, max(0, w - tw - 4))
    y = rng.choice((rng.randint(int(0.75 * h), max(int(0.75 * h), h - th - 4)), rng.randint(0, max(0, h - th - 4))))
    style = rng.choice(("outline", "plain", "box"))
    colour = rng.choice(((255, 255, 255), (255, 230, 0), (20, 20, 20)))
    if style == "box":
        back = (0, 0, 0) if sum(colour) > 300 else (255, 255, 255)
        draw.rectangle((x - 3, y - 3 + box[1], x + tw + 3, y + th + 3 + box[1]), fill=back)
    stroke = 2 if style == "outline" else 0
    draw.text((x, y), caption, font=font, fill=colour, stroke_width=stroke,
              stroke_fill=(0, 0, 0) if sum(colour) > 300 else (255, 255, 255))
    return np.asarray(img)


def text_frames(bases: list[np.ndarray], captions: list[str], n: int, seed: int) -> list[TextFrame]:
    import cv2

    rng = random.Random(seed)
    out = []
    for i in range(n):
        base = bases[rng.randrange(len(bases))]
        size = SIZES[i % len(SIZES)]
        frame = cv2.resize(base, size, interpolation=cv2.INTER_AREA)
        caption = captions[rng.randrange(len(captions))]
        out.append(TextFrame(draw_caption(frame, caption, rng), words(caption)))
    return out


def _captions(split: str) -> list[str]:
    from vidsearch.ops.datasets.stamps import stamps
    from vidsearch.ops.datasets.tuxpaint import split_of

    return sorted({s.caption for s in stamps() if split_of(s.caption) == split})


def _read(reader: Any, frames: list[np.ndarray]) -> tuple[list[frozenset[str]], float]:
    """Words read per frame, and seconds per frame."""
    t0 = time.perf_counter()
    found = [words(" ".join(line.text for line in reader.read_frames([(0.0, f)]))) for f in frames]
    return found, (time.perf_counter() - t0) / max(1, len(frames))


def _word_recall(found: list[frozenset[str]], frames: list[TextFrame]) -> float:
    hit = sum(len(f & t.words) for f, t in zip(found, frames, strict=True))
    return hit / max(1, sum(len(t.words) for t in frames))


def _judge(reader: Any, text: list[TextFrame], plain: list[np.ndarray], real: list[np.ndarray],
           full: list[frozenset[str]], full_real: list[frozenset[str]]) -> dict[str, Any]:
    readable = [i for i, f in enumerate(full) if f & text[i].words]
    flags = [reader.has_text(t.rgb) for t in text]
    t0 = time.perf_counter()
    plain_flags = [reader.has_text(f) for f in plain]
    gate_ms = (time.perf_counter() - t0) / max(1, len(plain)) * 1000
    found, text_s = _read(reader, [t.rgb for t in text])
    _, plain_s = _read(reader, plain)
    real_found, _ = _read(reader, real)
    return {
        "gate_recall": round(float(np.mean(flags)), 4),
        "gate_recall_readable": round(float(np.mean([flags[i] for i in readable])) if readable else 1.0, 4),
        "word_recall": round(_word_recall(found, text), 4),
        "real_text_frames_same": sum(a == b for a, b in zip(real_found, full_real, strict=True)),
        "plain_flagged": round(float(np.mean(plain_flags)), 4),
        "gate_ms_per_frame": round(gate_ms, 1),
        "ms_per_text_frame": round(text_s * 1000, 1),
        "ms_per_plain_frame": round(plain_s * 1000, 1),
    }


def run(settings: Settings, n_frames: int = 200, progress: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    from vidsearch.encoders.media.decode import keyframes
    from vidsearch.encoders.ocr import RapidOcrReader
    from vidsearch.ops.datasets.clips import real_clips

    cfg = settings.encoders
    progress("decoding keyframes of the packaged clips")
    clips = real_clips(settings.stack.cache_dir)
    plain = [k.rgb for c in clips for k in keyframes(c.path, settings.media)]
    ungated = RapidOcrReader(cfg.ocr_min_score, gate_side=0)
    progress("reading the plain keyframes without a gate")
    plain_words, plain_s = _read(ungated, plain)
    real = [f for f, w in zip(plain, plain_words, strict=True) if w]  # frames the clips carry text on
    full_real = [w for w in plain_words if w]
    plain = [f for f, w in zip(plain, plain_words, strict=True) if not w]

    report: dict[str, Any] = {"plain_frames": len(plain), "real_text_frames": len(real), "text_frames": n_frames,
                              "bars": {"gate_recall_readable": RECALL_BAR, "word_recall_drop": WORD_BAR}}
    splits: dict[str, Any] = {}
    for split, seed in (("val", 1), ("test", 2)):
        text = text_frames(plain, _captions(split), n_frames, seed)
        progress(f"{split}: reading {len(text)} text frames without a gate")
        full, full_s = _read(ungated, [t.rgb for t in text])
        rows: dict[str, Any] = {"ungated": {"word_recall": round(_word_recall(full, text), 4),
                                            "ms_per_text_frame": round(full_s * 1000, 1),
                                            "ms_per_plain_frame": round(plain_s * 1000, 1)}}
        gates = GATES if split == "val" else (report["chosen"],)
        for side, box_thresh in gates:
            progress(f"{split}: gate at {side} px, box threshold {box_thresh}")
            gated = RapidOcrReader(cfg.ocr_min_score, gate_side=side, gate_box_thresh=box_thresh)
            row = _judge(gated, text, plain, real, full, full_real)
            row["passes"] = bool(row["gate_recall_readable"] >= RECALL_BAR
                                 and row["word_recall"] >= rows["ungated"]["word_recall"] - WORD_BAR
                                 and row["real_text_frames_same"] == len(real))
            rows[f"{side}/{box_thresh}"] = row
        if split == "val":
            passing = [g for g in GATES if rows[f"{g[0]}/{g[1]}"]["passes"]]
            # The smallest passing side (fewest pixels: cheapest), then the highest box threshold
            # (fewest frames flagged); with none passing, the most sensitive gate.
            report["chosen"] = min(passing, key=lambda g: (g[0], -g[1])) if passing else GATES[-1]
        splits[split] = rows
    report["splits"] = splits
    chosen = splits["test"][f"{report['chosen'][0]}/{report['chosen'][1]}"]
    # What the gate saves on footage like the packaged clips (mostly no text).
    report["speedup_plain"] = round(splits["test"]["ungated"]["ms_per_plain_frame"] / max(1e-6, chosen["ms_per_plain_frame"]), 2)
    report["configured"] = [cfg.ocr_gate_side, cfg.ocr_gate_box_thresh]
    return report
