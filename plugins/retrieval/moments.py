"""Moments: the (start, end) window of a hit that best matches the query, with its evidence.

Candidates are keyframes (their text-bridge vectors, timestamped) and ASR segments (text,
embedded at query time: only the page's hits need it). Keyframe scores are smoothed over their
neighbours (0.25, 0.5, 0.25) so one lucky frame does not beat a consistent scene; a keyframe's
window runs from the midpoint with its predecessor to the midpoint with its successor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel


class Moment(BaseModel):
    start: float
    end: float
    score: float
    evidence: dict[str, Any]


def smooth(scores: np.ndarray) -> np.ndarray:
    if len(scores) < 3:
        return scores
    padded = np.pad(scores, 1, mode="edge")
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


def keyframe_windows(times: Sequence[float], duration: float | None) -> list[tuple[float, float]]:
    t = list(times)
    end = duration if duration and duration > 0 else (t[-1] if t else 0.0)
    out = []
    for i, ti in enumerate(t):
        lo = 0.0 if i == 0 else (t[i - 1] + ti) / 2
        hi = end if i == len(t) - 1 else (ti + t[i + 1]) / 2
        out.append((round(lo, 3), round(max(hi, ti), 3)))
    return out


def best_moment(query: np.ndarray, keyframes: Sequence[dict[str, Any]], segments: Sequence[dict[str, Any]],
                duration: float | None, embed_texts: Callable[[list[str]], np.ndarray] | None = None) -> Moment | None:
    """`query` is the raw text-encoder vector (the space of keyframe bridges and segment texts)."""
    best: Moment | None = None
    frames = [k for k in keyframes if k.get("vector")]
    if frames:
        vecs = np.asarray([k["vector"] for k in frames], dtype=np.float32)
        norms = np.linalg.norm(vecs, axis=1)
        raw = (vecs @ query) / np.maximum(norms, 1e-9)
        sm = smooth(raw)
        i = int(np.argmax(sm))
        lo, hi = keyframe_windows([float(k["t"]) for k in frames], duration)[i]
        best = Moment(start=lo, end=hi, score=round(float(sm[i]), 4),
                      evidence={"kind": "keyframe", "t": float(frames[i]["t"])})
    texts = [s for s in segments if str(s.get("text", "")).strip()]
    if texts and embed_texts is not None:
        sims = embed_texts([str(s["text"]) for s in texts]) @ query
        j = int(np.argmax(sims))
        if best is None or float(sims[j]) > best.score:
            s = texts[j]
            best = Moment(start=float(s["start"]), end=float(s["end"]), score=round(float(sims[j]), 4),
                          evidence={"kind": "transcript", "text": str(s["text"])})
    return best
