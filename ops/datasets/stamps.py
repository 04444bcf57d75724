"""Turn a Tux Paint stamp (PNG + caption + sound effect) into a short real mp4.

The image becomes frames with a slow pan/zoom (so keyframes differ), the stamp's sound effect
becomes the audio track; the spoken English description is never used (it would make retrieval
trivial text matching; docs/architecture.md, "Data").
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

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


def _frames(png: Path, seconds: float) -> list[np.ndarray]:
    from PIL import Image

    img = Image.open(png).convert("RGBA")
    canvas = Image.new("RGBA", img.size, (255, 255, 255, 255))
    canvas.alpha_composite(img)
    base = canvas.convert("RGB")
    n = int(seconds * FPS)
    frames = []
    for i in range(n):
        zoom = 1.0 + 0.25 * i / max(1, n - 1)  # slow zoom in, drifting right
        w, h = base.size
        cw, ch = int(w / zoom), int(h / zoom)
        left = int((w - cw) * (0.5 + 0.4 * (i / max(1, n - 1) - 0.5)))
        top = (h - ch) // 2
        frame = base.crop((left, top, left + cw, top + ch)).resize(SIZE)
        frames.append(np.asarray(frame))
    return frames


def _sound(path: Path, rate: int = 16_000) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        chunks = [out.to_ndarray().reshape(-1) for f in container.decode(audio=0) for out in resampler.resample(f)]
    return np.concatenate(chunks) if chunks else np.zeros(rate, np.int16)


def render(stamp: Stamp, out: Path, seconds: float = 3.0) -> Path:
    """Write `out` (mp4: MPEG-4 video, AAC audio when the stamp has a sound)."""
    import av

    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), mode="w") as container:
        video = container.add_stream("mpeg4", rate=FPS)
        video.width, video.height, video.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        audio = None
        samples = _sound(stamp.sound) if stamp.sound else None
        if samples is not None:
            audio = container.add_stream("aac", rate=16_000)
            audio.layout = "mono"
        for rgb in _frames(stamp.png, seconds):
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None and samples is not None:
            samples = samples[: int(seconds * 16_000)]
            for start in range(0, len(samples), 1024):
                chunk = samples[start : start + 1024]
                frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
                frame.sample_rate = 16_000
                frame.pts = start
                frame.time_base = Fraction(1, 16_000)
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return out
