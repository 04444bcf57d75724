"""Fitting the fingerprint whitening (encoders/fingerprint.py) on packaged frames.

Matching pairs are a frame and an edited copy of it. Frames come from Tux Paint stamps of the
*train* split only (rendered with their pan/zoom, two moments per stamp), so nothing the copy
benchmark shows (its references, queries and filler use val/test stamps and real clips) is
seen. Edits are the benchmark's own kinds (ops/datasets/copy_transforms.py): crop, scale,
borders, brightness/contrast, text and logo overlays, low-bitrate re-encoding, picture-in-picture.
Flips are left out on purpose: they are handled at query time, and whitening them away would
also merge genuinely mirrored footage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.encoders.fingerprint import DEFAULT_DIM, Fingerprinter, fit_learned_whitening

Edit = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _edits(logos: list[np.ndarray], backgrounds: list[np.ndarray]) -> list[Edit]:
    from vidsearch.ops.datasets import copy_transforms as T
    from vidsearch.ops.datasets.video_io import reencode

    def pick(items: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        return items[int(rng.integers(len(items)))]

    return [
        lambda f, r: T.crop(f, float(r.uniform(0.1, 0.25)), (float(r.uniform(0, 1)), float(r.uniform(0, 1)))),
        lambda f, r: T.scale(f, float(r.uniform(0.4, 0.8))),
        lambda f, r: T.borders(f, float(r.uniform(0.1, 0.2)), "letterbox" if r.random() < 0.5 else "pillarbox"),
        lambda f, r: T.brightness_contrast(f, float(r.uniform(0.6, 1.4)), float(r.uniform(-40, 40))),
        lambda f, r: T.text_overlay(f, "BREAKING 24/7 LIVE", (float(r.uniform(0.05, 0.5)), float(r.uniform(0.05, 0.9)))),
        lambda f, r: T.logo_overlay(f, pick(logos, r)),
        lambda f, r: reencode(f, 10, int(r.integers(40_000, 120_000))),
        lambda f, r: T.picture_in_picture(f, np.repeat(pick(backgrounds, r)[None], len(f), 0), float(r.uniform(0.5, 0.8)),
                                          (float(r.uniform(0, 1)), float(r.uniform(0, 1)))),
    ]


@dataclass(frozen=True)
class FitReport:
    pairs: int
    stamps: int
    dim: int
    shrink: float


def training_pairs(settings: Settings, limit: int | None = None, per_stamp: int = 2, seed: int = 0,
                   progress: Callable[[list[Any], int], Iterable[Any]] | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(anchor features, edited features, stamps used): backbone features of train-split stamp
    frames and of one random edit of each."""
    from vidsearch.encoders.serving import load_vision_encoder
    from vidsearch.ops.datasets.stamps import frames as stamp_frames
    from vidsearch.ops.datasets.stamps import stamps
    from vidsearch.ops.datasets.tuxpaint import split_of

    rng = np.random.default_rng(seed)
    train = [s for s in stamps() if split_of(s.caption) == "train"]
    if limit:
        train = [train[i] for i in sorted(rng.choice(len(train), size=min(limit, len(train)), replace=False))]
    from PIL import Image

    rendered = [np.stack(stamp_frames(s.png, 2.0)) for s in train]
    logos = []
    for s in train[:20]:  # RGBA stamps as logos (their own alpha)
        with Image.open(s.png) as img:
            rgba = img.convert("RGBA")
        rgba.thumbnail((128, 128))
        logos.append(np.asarray(rgba))
    edits = _edits(logos, [r[-1] for r in rendered[-20:]])
    vision = load_vision_encoder(settings)
    anchors, positives = [], []
    for frames in (progress(rendered, len(rendered)) if progress else rendered):
        for idx in np.linspace(0, len(frames) - 1, per_stamp).round().astype(int):
            frame = frames[idx][None]
            edited = edits[int(rng.integers(len(edits)))](frame, rng)
            out = vision.encode([frame[0], edited[0]]).features
            anchors.append(out[0])
            positives.append(out[1])
    return np.stack(anchors), np.stack(positives), len(train)


def fit(settings: Settings, dim: int = DEFAULT_DIM, shrink: float = 0.1, limit: int | None = None, seed: int = 0,
        progress: Callable[[list[Any], int], Iterable[Any]] | None = None) -> tuple[Fingerprinter, FitReport]:
    anchors, positives, n_stamps = training_pairs(settings, limit, seed=seed, progress=progress)
    mean, projection = fit_learned_whitening(anchors, positives, dim, shrink)
    card = {"source": "tuxpaint train-split stamps", "stamps": n_stamps, "pairs": len(anchors), "dim": dim,
            "shrink": shrink, "seed": seed, "edits": "crop scale borders brightness_contrast text logo reencode pip",
            "backbone": settings.encoders.vision_model}
    return Fingerprinter(mean, projection, card), FitReport(len(anchors), n_stamps, dim, shrink)
