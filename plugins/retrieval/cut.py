"""Autocut: drop the weak tail of a ranked list where the fused scores fall off a cliff.

Fused scores often run in a few plateaus: the videos that match, then a long flat tail of
partial matches. A fixed k returns the tail as if it were as good. A cliff is a drop between
neighbours that is both large against the list's typical step (`STEP_FACTOR` times the median
of the non-zero steps) and a real share of the score range (`MIN_SHARE`), so a list that falls
smoothly is never cut. `autocut(scores, jumps)` keeps everything before the `jumps`-th cliff
(the same meaning as Weaviate's `autocut` parameter).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

STEP_FACTOR = 3.0
MIN_SHARE = 0.1


def cliffs(scores: Sequence[float]) -> list[int]:
    """Indices i where the drop from scores[i-1] to scores[i] is a cliff (scores sorted best first)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size < 3:
        return []
    steps = s[:-1] - s[1:]
    span = float(s[0] - s[-1])
    positive = steps[steps > 1e-12]
    if span <= 0 or positive.size == 0:
        return []
    typical = float(np.median(positive))
    return [i + 1 for i, d in enumerate(steps) if d > STEP_FACTOR * typical and d >= MIN_SHARE * span]


def autocut(scores: Sequence[float], jumps: int = 1) -> int:
    """How many of `scores` (best first) to keep: all of them up to the `jumps`-th cliff."""
    found = cliffs(scores)
    return found[jumps - 1] if len(found) >= jumps else len(scores)
