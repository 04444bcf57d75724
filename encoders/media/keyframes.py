"""Choosing keyframes from sampled frames: pure functions, testable on tiny arrays.

A candidate's scene score is the mean absolute difference between its 32x32 grey thumbnail and
the previous candidate's (0 = identical, 1 = black to white). Frames whose score passes the
threshold start a new shot; the first frame always counts. The threshold adapts to the clip:
at least `floor`, and `relative` times the clip's median change, so steady camera motion (a
high median) does not read as a cut while a static clip still registers a real one. Too few shots (a static or very short
clip) fall back to uniform sampling over time; too many keep the strongest changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

THUMB = 32


@dataclass
class Candidate:
    t: float
    rgb: np.ndarray
    thumb: np.ndarray
    score: float = 0.0


@dataclass(frozen=True)
class Keyframe:
    t: float
    rgb: np.ndarray
    reason: Literal["scene", "uniform"]
    score: float


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """32x32 grey in [0, 1], by block averaging (nearest rows/cols; no extra dependency)."""
    grey = rgb.astype(np.float32).mean(axis=2) / 255.0
    rows = np.linspace(0, grey.shape[0] - 1, THUMB).round().astype(int)
    cols = np.linspace(0, grey.shape[1] - 1, THUMB).round().astype(int)
    return grey[np.ix_(rows, cols)]


def scene_scores(thumbs: list[np.ndarray]) -> np.ndarray:
    scores = np.empty(len(thumbs), np.float32)
    for i, thumb in enumerate(thumbs):
        scores[i] = np.inf if i == 0 else float(np.abs(thumb - thumbs[i - 1]).mean())
    return scores


def uniform_indices(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n), first and last included when k >= 2."""
    if k >= n:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})


def scene_threshold(scores: np.ndarray, floor: float, relative: float) -> float:
    changes = scores[1:]
    return max(floor, relative * float(np.median(changes))) if changes.size else floor


def select_keyframes(
    candidates: list[Candidate], k_min: int, k_max: int, floor: float, relative: float = 2.5
) -> list[Keyframe]:
    if not candidates:
        return []
    scores = scene_scores([c.thumb for c in candidates])
    threshold = scene_threshold(scores, floor, relative)
    shots = [i for i, s in enumerate(scores) if s >= threshold]
    if len(shots) > k_max:
        strongest = sorted(shots, key=lambda i: -scores[i])[:k_max]
        shots = sorted(strongest)
    chosen: dict[int, Literal["scene", "uniform"]] = {i: "scene" for i in shots}
    if len(chosen) < k_min:
        for i in uniform_indices(len(candidates), k_min):
            chosen.setdefault(i, "uniform")
        if len(chosen) > max(k_min, len(shots)):
            # uniform picks that landed on scene picks leave us a few over; drop extra uniform ones
            extra = [i for i, why in chosen.items() if why == "uniform"]
            for i in extra[: len(chosen) - max(k_min, len(shots))]:
                del chosen[i]
    return [
        Keyframe(t=candidates[i].t, rgb=candidates[i].rgb, reason=chosen[i], score=float(min(scores[i], 1.0)))
        for i in sorted(chosen)
    ]
