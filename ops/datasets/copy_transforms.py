"""The edits a copied segment goes through in the same-source benchmark (ops/datasets/copies.py).

Each is a pure function of an (n, h, w, 3) uint8 RGB array and explicit parameters (the builder
draws them from its seeded generator), so a query is reproducible from its plan and each edit
can be tested on a few synthetic frames. Spatial edits keep the frame size: a query is one video,
so whatever is shrunk or cut is resized back or framed. The timeline edits (`speed`, `splice`)
return what the ground truth needs: how many frames came out and where each piece starts.

The menu is the one of video copy detection benchmarks: re-encoding (video_io.reencode), scale,
crop, flip, borders, brightness/contrast, text and logo overlays, picture-in-picture, speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Literal

import numpy as np

Size = tuple[int, int]  # (width, height)


def _size(frames: np.ndarray) -> Size:
    return int(frames.shape[2]), int(frames.shape[1])


def resize(frames: np.ndarray, size: Size) -> np.ndarray:
    """Every frame resized to `size` (bilinear; PIL, frame by frame)."""
    from PIL import Image

    if _size(frames) == size:
        return frames.copy()
    out = np.empty((len(frames), size[1], size[0], 3), np.uint8)
    for i, f in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BILINEAR))
    return out


def cover(frames: np.ndarray, size: Size) -> np.ndarray:
    """Fill `size` without distortion: the largest centred window of the target's aspect, resized
    (how filler footage of another shape is fitted into a query)."""
    w, h = _size(frames)
    tw, th = size
    if w * th > tw * h:  # wider than the target: cut the sides
        cw, ch = max(1, round(h * tw / th)), h
    else:
        cw, ch = w, max(1, round(w * th / tw))
    left, top = (w - cw) // 2, (h - ch) // 2
    return resize(frames[:, top:top + ch, left:left + cw], size)


def scale(frames: np.ndarray, factor: float) -> np.ndarray:
    """Resolution loss: down to `factor` of the size, then back up (a low-resolution re-upload)."""
    w, h = _size(frames)
    small = resize(frames, (max(2, round(w * factor)), max(2, round(h * factor))))
    return resize(small, (w, h))


def crop(frames: np.ndarray, fraction: float, anchor: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """Cut `fraction` of the width and of the height away, the kept window placed by `anchor`
    ((0, 0): top-left, (1, 1): bottom-right), and resize it back to the full size."""
    w, h = _size(frames)
    cw, ch = round(w * (1 - fraction)), round(h * (1 - fraction))
    left, top = round((w - cw) * anchor[0]), round((h - ch) * anchor[1])
    return resize(frames[:, top:top + ch, left:left + cw], (w, h))


def hflip(frames: np.ndarray) -> np.ndarray:
    """The horizontal mirror."""
    return frames[:, :, ::-1].copy()


def borders(frames: np.ndarray, fraction: float, kind: Literal["letterbox", "pillarbox"],
            colour: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Bars of `colour` taking `fraction` of the height (letterbox: top and bottom) or the width
    (pillarbox: left and right); the picture is squeezed into the rest, as a re-upload into a
    frame of another aspect does."""
    w, h = _size(frames)
    out = np.empty_like(frames)
    out[:] = np.asarray(colour, np.uint8)
    if kind == "letterbox":
        ih = max(2, round(h * (1 - fraction)))
        top = (h - ih) // 2
        out[:, top:top + ih] = resize(frames, (w, ih))
    else:
        iw = max(2, round(w * (1 - fraction)))
        left = (w - iw) // 2
        out[:, :, left:left + iw] = resize(frames, (iw, h))
    return out


def brightness_contrast(frames: np.ndarray, contrast: float, brightness: float) -> np.ndarray:
    """contrast * (x - 128) + 128 + brightness, clipped to [0, 255]."""
    out = (frames.astype(np.float32) - 128.0) * contrast + 128.0 + brightness
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _blend(frames: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """Alpha-composite one (h, w, 4) uint8 layer over every frame."""
    alpha = layer[..., 3:4].astype(np.float32) / 255.0
    out = frames.astype(np.float32) * (1 - alpha) + layer[..., :3].astype(np.float32) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def text_layer(size: Size, text: str, position: tuple[float, float], height: float,
               colour: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """An (h, w, 4) layer with `text` drawn by PIL: glyphs `height` of the frame height tall, a
    dark outline so it reads on any picture, its top-left at `position` (fractions of the room
    left beside the text)."""
    from PIL import Image, ImageDraw, ImageFont

    w, h = size
    font = ImageFont.load_default(size=max(8, round(h * height)))
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font, stroke_width=2)
    x = round(max(0, w - (x1 - x0)) * position[0]) - x0
    y = round(max(0, h - (y1 - y0)) * position[1]) - y0
    draw.text((x, y), text, font=font, fill=(*colour, 255), stroke_width=2, stroke_fill=(0, 0, 0, 255))
    return np.asarray(layer)


def text_overlay(frames: np.ndarray, text: str, position: tuple[float, float], height: float = 0.1) -> np.ndarray:
    """`text` burnt into every frame (a caption, a watermark, a channel name)."""
    return _blend(frames, text_layer(_size(frames), text, position, height))


def logo_layer(size: Size, logo: np.ndarray, width: float, corner: tuple[float, float], opacity: float) -> np.ndarray:
    """An (h, w, 4) layer holding `logo` (h, w, 4 RGBA) scaled to `width` of the frame width,
    placed by `corner` (fractions of the room left, with a margin), at `opacity`."""
    from PIL import Image

    w, h = size
    img = Image.fromarray(logo, "RGBA")
    lw = max(2, round(w * width))
    lh = max(2, min(h - 2, round(img.height * lw / img.width)))
    img = img.resize((lw, lh), Image.Resampling.BILINEAR)
    margin = round(0.03 * min(w, h))
    x = margin + round(max(0, w - lw - 2 * margin) * corner[0])
    y = margin + round(max(0, h - lh - 2 * margin) * corner[1])
    layer = np.zeros((h, w, 4), np.uint8)
    patch = np.asarray(img).copy()
    patch[..., 3] = np.rint(patch[..., 3] * opacity).astype(np.uint8)
    layer[y:y + lh, x:x + lw] = patch[: h - y, : w - x]
    return layer


def logo_overlay(frames: np.ndarray, logo: np.ndarray, width: float = 0.2, corner: tuple[float, float] = (1.0, 0.0),
                 opacity: float = 0.8) -> np.ndarray:
    """A small image stamped on every frame (a broadcaster's or uploader's logo)."""
    return _blend(frames, logo_layer(_size(frames), logo, width, corner, opacity))


def picture_in_picture(frames: np.ndarray, background: np.ndarray, factor: float,
                       position: tuple[float, float]) -> np.ndarray:
    """The frames shrunk to `factor` of the size and pasted on `background` (same count and
    size, other footage) at `position` (fractions of the room left)."""
    if background.shape != frames.shape:
        raise ValueError(f"background {background.shape} must match the frames {frames.shape}")
    w, h = _size(frames)
    iw, ih = max(2, round(w * factor)), max(2, round(h * factor))
    x, y = round((w - iw) * position[0]), round((h - ih) * position[1])
    out = background.copy()
    out[:, y:y + ih, x:x + iw] = resize(frames, (iw, ih))
    return out


def speed_indices(n: int, speed: Fraction) -> np.ndarray:
    """Source frame of each output frame when n frames are played at `speed`: output frame j
    shows source frame floor(j * speed); n / speed frames come out (rounded down)."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    count = int(n / speed)
    return np.array([int(j * speed) for j in range(count)], dtype=np.int64)


def change_speed(frames: np.ndarray, speed: Fraction) -> np.ndarray:
    """Faster (> 1: frames dropped) or slower (< 1: frames repeated) at the same frame rate.
    A segment of n frames lasts n / speed frames afterwards; the builder picks n so that is whole."""
    return frames[speed_indices(len(frames), speed)]


def splice(pieces: Sequence[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The pieces one after the other (hard cuts) and each piece's [start, end) frame span in the
    result: frame spans divided by the rate are the query's ground-truth times."""
    spans, t = [], 0
    for p in pieces:
        spans.append((t, t + len(p)))
        t += len(p)
    return np.concatenate(list(pieces)), spans
