"""Make an icon look like a video frame: a varied background, a random scale, position and crop,
colour jitter, blur and JPEG compression (the blockiness of a low-bitrate keyframe).

Every choice comes from `random.Random(seed)`, so a corpus is the same on every rebuild.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from vidsearch.ops.datasets.format import DatasetError

FRAME = (320, 240)  # the size of the Tux Paint evaluation videos
ICON_SIDE = 256


class IconError(DatasetError):
    """A packaged image that cannot be read or drawn: skipped and counted, never fatal."""


def load_icon(path: Path) -> Image.Image:
    """RGBA icon from PNG, WebP or SVG (rasterised with cairosvg, which draws SVG with cairo)."""
    if path.suffix.lower() == ".svg":
        import cairosvg

        try:
            png = cairosvg.svg2png(url=str(path), output_width=ICON_SIDE, output_height=ICON_SIDE)
        except Exception as exc:  # cairosvg raises whatever its parser meets (AttributeError on dangling markers)
            raise IconError(f"{path}: cairosvg cannot draw it: {type(exc).__name__}: {exc}") from exc
        return Image.open(io.BytesIO(png)).convert("RGBA")
    try:
        with Image.open(path) as img:
            return img.convert("RGBA")
    except OSError as exc:
        raise IconError(f"{path}: {exc}") from exc


def _background(rng: random.Random) -> Image.Image:
    w, h = FRAME
    kind = rng.choice(("white", "solid", "gradient", "noise"))
    if kind == "white":
        return Image.new("RGB", FRAME, (255, 255, 255))
    c1 = tuple(rng.randrange(256) for _ in range(3))
    if kind == "solid":
        return Image.new("RGB", FRAME, c1)
    if kind == "gradient":
        c2 = np.array([rng.randrange(256) for _ in range(3)], np.float32)
        t = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
        ramp = (1 - t)[:, None] * np.array(c1, np.float32) + t[:, None] * c2
        arr = np.broadcast_to(ramp[None, :, :], (h, w, 3)) if len(t) == w else np.broadcast_to(ramp[:, None, :], (h, w, 3))
        return Image.fromarray(arr.astype(np.uint8))
    # low-frequency noise: a few random pixels scaled up smoothly, like an out-of-focus scene
    small = np.random.default_rng(rng.randrange(2**32)).integers(0, 256, (rng.randint(2, 6), rng.randint(2, 6), 3), dtype=np.uint8)
    return Image.fromarray(small).resize(FRAME, Image.Resampling.BICUBIC)


def render(icon: Image.Image, seed: int) -> Image.Image:
    """One frame-like RGB image of `icon` (RGBA)."""
    rng = random.Random(seed)
    frame = _background(rng)
    w, h = FRAME
    side = int(min(w, h) * rng.uniform(0.4, 1.0))
    scaled = icon.resize((side, side), Image.Resampling.BICUBIC)
    # allow up to a fifth of the icon off-frame: keyframes crop their subjects too
    x = rng.randint(-side // 5, w - side + side // 5)
    y = rng.randint(-side // 5, h - side + side // 5)
    frame.paste(scaled, (x, y), scaled)
    frame = ImageEnhance.Brightness(frame).enhance(rng.uniform(0.75, 1.25))
    frame = ImageEnhance.Contrast(frame).enhance(rng.uniform(0.75, 1.25))
    frame = ImageEnhance.Color(frame).enhance(rng.uniform(0.6, 1.4))
    if rng.random() < 0.5:
        frame = frame.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    buf = io.BytesIO()
    frame.save(buf, "JPEG", quality=rng.randint(20, 85))
    buf.seek(0)
    return Image.open(buf).convert("RGB")
