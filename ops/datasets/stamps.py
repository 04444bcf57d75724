"""Turn a Tux Paint stamp (PNG + caption + sound effect) into a short real mp4.

The image becomes frames with a slow pan/zoom (so keyframes differ), the stamp's sound effect
becomes the audio track; the spoken English description is never used (it would make retrieval
trivial text matching; docs/architecture.md, "Data").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.ops.datasets.video_io import write_mp4

STAMPS = Path("/usr/share/tuxpaint/stamps")
SIZE = (320, 240)
FPS = 10


@dataclass(frozen=True)
class Stamp:
    png: Path
    caption: str
    category: str
    sound: Path | None


def stamps(limit: int | None = None) -> list[Stamp]:
    """Captioned PNG stamps, sorted by path (deterministic)."""
    found = []
    for png in sorted(STAMPS.rglob("*.png")):
        txt = png.with_suffix(".txt")
        if not txt.exists():
            continue
        caption = txt.read_text(errors="replace").splitlines()[0].strip()
        if not caption:
            continue
        sound = png.with_suffix(".ogg")
        found.append(Stamp(png, caption, png.parent.relative_to(STAMPS).parts[0], sound if sound.exists() else None))
        if limit and len(found) >= limit:
            break
    return found


def frames(png: Path, seconds: float) -> list[np.ndarray]:
    """`seconds` x FPS frames of SIZE: the stamp on white, slowly zooming in and drifting right
    (so keyframes differ)."""
    from PIL import Image

    return frames_of(Image.open(png), seconds)


def frames_of(image: Any, seconds: float) -> list[np.ndarray]:
    """`frames` of a PIL image already in memory (an icon rasterised from SVG, say)."""
    from PIL import Image

    img = image.convert("RGBA")
    canvas = Image.new("RGBA", img.size, (255, 255, 255, 255))
    canvas.alpha_composite(img)
    base = canvas.convert("RGB")
    n = int(seconds * FPS)
    out = []
    for i in range(n):
        zoom = 1.0 + 0.25 * i / max(1, n - 1)  # slow zoom in, drifting right
        w, h = base.size
        cw, ch = int(w / zoom), int(h / zoom)
        left = int((w - cw) * (0.5 + 0.4 * (i / max(1, n - 1) - 0.5)))
        top = (h - ch) // 2
        frame = base.crop((left, top, left + cw, top + ch)).resize(SIZE)
        out.append(np.asarray(frame))
    return out


def sound(path: Path, rate: int = 16_000) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        chunks = [out.to_ndarray().reshape(-1) for f in container.decode(audio=0) for out in resampler.resample(f)]
    return np.concatenate(chunks) if chunks else np.zeros(rate, np.int16)


def render(stamp: Stamp, out: Path, seconds: float = 3.0) -> Path:
    """Write `out` (mp4: MPEG-4 video, AAC audio when the stamp has a sound)."""
    samples = sound(stamp.sound)[: int(seconds * 16_000)] if stamp.sound else None
    return write_mp4(out, frames(stamp.png, seconds), FPS, audio=samples)
