"""Turning a query (a video file or a still image) into fingerprinted frames for copy search.

A query gets the catalogue's treatment (the same keyframe choice, shots and backbone) plus the
fingerprints of its frames mirrored left-right, so a flipped copy is found without storing a
second vector per catalogue keyframe. A still image is a one-frame query at t = 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidsearch.core.frames import FrameSet
from vidsearch.core.settings import MediaSettings
from vidsearch.encoders.errors import EncoderError
from vidsearch.encoders.fingerprint import Fingerprinter
from vidsearch.encoders.vision import VisionEncoder

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


class QueryImageError(EncoderError):
    """A still image used as a copy query cannot be read."""

    stage = "decode"


def _fingerprints(frames: list[np.ndarray], vision: VisionEncoder, fp: Fingerprinter) -> tuple[np.ndarray, np.ndarray]:
    both = vision.encode([*frames, *[np.ascontiguousarray(f[:, ::-1]) for f in frames]]).features
    return fp(both[: len(frames)]), fp(both[len(frames):])


def image_query(path: Path, vision: VisionEncoder, fp: Fingerprinter, max_side: int = 1024) -> tuple[FrameSet, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.thumbnail((max_side, max_side))
            rgb = np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise QueryImageError(f"cannot read query image {path}: {exc}") from exc
    vectors, mirrored = _fingerprints([rgb], vision, fp)
    return FrameSet(path.stem, 0, np.zeros(1, np.float32), vectors, [(0.0, 0.0)]), mirrored


def video_query(path: Path, vision: VisionEncoder, fp: Fingerprinter, media: MediaSettings) -> tuple[FrameSet, np.ndarray]:
    from vidsearch.encoders.features import shot_at
    from vidsearch.encoders.media.decode import frames_and_shots

    selection = frames_and_shots(path, media)
    frames = [k.rgb for k in selection.keyframes]
    times = np.array([k.t for k in selection.keyframes], np.float32)
    if not frames:
        return FrameSet(path.stem, 0, times, np.zeros((0, fp.dim), np.float32)), np.zeros((0, fp.dim), np.float32)
    vectors, mirrored = _fingerprints(frames, vision, fp)
    shots = [shot_at(selection.shots, float(t)) for t in times]
    held = [s for s in shots if s is not None]
    return FrameSet(path.stem, 0, times, vectors, held if len(held) == len(times) else []), mirrored


def media_query(path: Path, vision: VisionEncoder, fp: Fingerprinter, media: MediaSettings) -> tuple[FrameSet, np.ndarray]:
    """A still image or a video, by its extension."""
    if path.suffix.lower() in IMAGE_EXT:
        return image_query(path, vision, fp)
    return video_query(path, vision, fp, media)
