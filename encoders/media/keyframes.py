"""Choosing keyframes from sampled frames: pure functions, testable on tiny arrays.

A candidate's scene score is the mean absolute difference between its 32x32 grey thumbnail and
the previous candidate's (0 = identical, 1 = black to white). Frames whose score passes the
threshold start a new shot; the first frame always counts. The threshold adapts to the clip:
at least `floor`, and `relative` times the clip's median change, so steady camera motion (a
high median) does not read as a cut while a static clip still registers a real one. Too few shots (a static or very short
clip) fall back to uniform sampling over time; too many keep the strongest changes.

Shots come from the same scores and the same threshold, never capped by the keyframe budget, with
two extra guards because a moment must not be a sliver of a shot: a cut must also be `relative`
times the median change of its neighbours (a busy pan keeps changing by about the same amount, a
cut stands out), and cuts closer than MIN_SHOT_S keep the stronger one. A cut detected at candidate
i happened between candidates i-1 and i, so its time is their midpoint (off by at most half a
sampling interval, 0.25 s at the default 0.5 s); the shots are the spans between consecutive cuts,
covering [0, duration]. Moments (plugins/retrieval/moments.py) are built from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

THUMB = 32
Shot = tuple[float, float]  # (start, end) in seconds
MIN_SHOT_S = 1.0  # shots shorter than this are not worth a moment of their own
LOCAL_WINDOW = 4  # candidates on each side a cut must stand out from (2 s at the default sampling)


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


def cut_indices(scores: np.ndarray, threshold: float, relative: float, window: int = LOCAL_WINDOW) -> list[int]:
    """Candidates that start a new shot: past the clip's threshold AND `relative` times the median
    change of the `window` candidates on each side. The clip-wide test alone splits a busy pan
    (its steady changes sit above a calm clip's median) into slivers; a cut also stands out from
    its neighbours. The first candidate is the start of the video, no cut."""
    out = []
    for i in range(1, len(scores)):
        around = [scores[j] for j in range(max(1, i - window), min(len(scores), i + window + 1)) if j != i]
        if scores[i] >= threshold and (not around or scores[i] >= relative * float(np.median(around))):
            out.append(i)
    return out


def shots_from_scores(times: list[float], scores: np.ndarray, threshold: float, duration: float,
                      relative: float = 2.5, min_shot_s: float = MIN_SHOT_S) -> list[Shot]:
    """Shots covering [0, end], end = max(duration, last candidate time); a cut at candidate i is
    placed midway between candidates i-1 and i. Cuts are taken strongest first, each at least
    `min_shot_s` from the others and from both ends, so a flash or a burst of motion that passes
    the threshold twice in a row makes one cut, not a sliver of a shot. [] when there is no
    timeline (no candidates, or everything at t = 0)."""
    if not times:
        return []
    end = round(max(float(duration), float(times[-1])), 3)
    if end <= 0:
        return []
    bounds = [0.0, end]
    for i in sorted(cut_indices(scores, threshold, relative), key=lambda i: (-float(scores[i]), i)):
        cut = round((times[i - 1] + times[i]) / 2, 3)
        if all(abs(cut - b) >= min_shot_s for b in bounds):
            bounds.append(cut)
    bounds.sort()
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def detect_shots(candidates: list[Candidate], duration: float, floor: float, relative: float = 2.5,
                 min_shot_s: float = MIN_SHOT_S) -> list[Shot]:
    """The shots of a clip from its sampled candidates (see the module docstring)."""
    scores = scene_scores([c.thumb for c in candidates])
    threshold = scene_threshold(scores, floor, relative)
    return shots_from_scores([c.t for c in candidates], scores, threshold, duration, relative, min_shot_s)


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
