"""Moments: the spans of a hit that best answer the query, with their evidence.

A moment is a shot (the span between two hard cuts, found at decode time and stored with each
keyframe as "shot": [start, end]) or a run of adjacent shots, never an arbitrary window. Every
score is a cosine with the raw query vector, in the text encoder's space:

  visual(shot) = mean cosine of the bridge vectors of the shot's keyframes
  text(shot)   = best cosine of the transcript ("asr") and on-screen text ("ocr") segments that
                 overlap the shot by at least half their length or TEXT_OVERLAP_S seconds
                 (embedded at query time: only a page's hits need it)
  score(shot)  = max(visual, text): the strongest evidence decides, as a keyframe and a
                 transcript segment always competed here; a shot with neither is never a moment.

The best-scoring shot seeds a moment, which grows into a neighbouring shot while that neighbour
scores within EXTEND of the seed's lead over the video's typical (median) shot:
score(j) >= score(seed) - EXTEND * (score(seed) - median). A neighbour that shows the same thing
(one scene cut in two by motion, a sentence spoken across a cut) scores nearly the same and joins;
an unrelated one does not, and with two shots only a tie joins. `top_moments` repeats this on the
shots left over, so the moments it returns never overlap. Spans between stored shots (shots that
kept no keyframe) stay on the timeline, so text evidence there still counts.

Documents without shots (records from before shot detection) keep the keyframe windows: each
keyframe's window runs from the midpoint with its predecessor to the midpoint with its successor,
its score smoothed over its neighbours (0.25, 0.5, 0.25) so one lucky frame does not beat a
consistent scene, and text segments compete as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

EXTEND = 0.25  # how close to the seed a neighbour must score to join its moment (share of the seed's lead)
TEXT_OVERLAP_S = 1.0  # a segment counts for a shot it overlaps by this long, or by half its length
EVIDENCE_KIND = {"asr": "transcript", "ocr": "ocr"}  # segment kind -> the moment's evidence kind

EmbedTexts = Callable[[list[str]], np.ndarray]


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


@dataclass
class Span:
    """A stretch of the timeline (a shot, or a gap between stored shots) and its evidence."""

    start: float
    end: float
    frames: list[tuple[float, float]] = field(default_factory=list)  # (t, cosine) of its keyframes
    text: tuple[float, str, str] | None = None  # (cosine, kind, text) of its best segment

    @property
    def visual(self) -> float | None:
        return float(np.mean([c for _, c in self.frames])) if self.frames else None

    @property
    def score(self) -> float | None:
        found = [s for s in (self.visual, self.text[0] if self.text else None) if s is not None]
        return max(found) if found else None


def _shot(entry: dict[str, Any]) -> tuple[float, float] | None:
    bounds = entry.get("shot")
    if not isinstance(bounds, list | tuple) or len(bounds) != 2:
        return None
    try:
        start, end = float(bounds[0]), float(bounds[1])
    except (TypeError, ValueError):
        return None
    return (start, end) if math.isfinite(start) and math.isfinite(end) and 0 <= start < end else None


def timeline(shots: Sequence[tuple[float, float]], duration: float | None) -> list[Span]:
    """The distinct shots in time order, with the gaps between them (and up to `duration`) as
    spans of their own, so the spans cover the video without overlapping."""
    spans: list[Span] = []
    t = 0.0
    for start, end in sorted(set(shots)):
        if start < t:  # overlaps the previous shot: a malformed document; keep the earlier one
            continue
        if start > t:
            spans.append(Span(t, start))
        spans.append(Span(start, end))
        t = end
    if duration and duration > t:
        spans.append(Span(t, float(duration)))
    return spans


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _frame_scores(query: np.ndarray, frames: Sequence[dict[str, Any]]) -> np.ndarray:
    vecs = np.asarray([k["vector"] for k in frames], dtype=np.float32)
    return (vecs @ query) / np.maximum(np.linalg.norm(vecs, axis=1), 1e-9)


def _text_scores(query: np.ndarray, texts: Sequence[dict[str, Any]], embed_texts: EmbedTexts) -> np.ndarray:
    """Cosine of each segment's text with the query; each distinct text is embedded once."""
    unique = list(dict.fromkeys(str(s["text"]) for s in texts))
    vecs = np.asarray(embed_texts(unique), dtype=np.float32)
    sims = (vecs @ query) / np.maximum(np.linalg.norm(vecs, axis=1), 1e-9)
    by_text = dict(zip(unique, sims.tolist(), strict=True))
    return np.asarray([by_text[str(s["text"])] for s in texts], dtype=np.float32)


def _segment_bounds(s: dict[str, Any]) -> tuple[float, float]:
    start = float(s.get("start", 0.0))
    return start, max(start, float(s.get("end", start)))


def _touches(span: Span, start: float, end: float) -> bool:
    if end <= start:  # an instant (text read on one frame)
        return span.start <= start < span.end
    overlap = min(span.end, end) - max(span.start, start)
    return overlap > 0 and overlap >= min(TEXT_OVERLAP_S, 0.5 * (end - start))


def score_spans(query: np.ndarray, frames: Sequence[dict[str, Any]], shots: Sequence[tuple[float, float]],
                texts: Sequence[dict[str, Any]], text_scores: np.ndarray, duration: float | None) -> list[Span]:
    """The timeline with each span's keyframes and best overlapping segment attached."""
    end = max([duration or 0.0, *(e for _, e in shots)])
    spans = timeline(shots, end)
    index = {(s.start, s.end): i for i, s in enumerate(spans)}
    starts = [s.start for s in spans]
    for k, shot, cos in zip(frames, shots, _frame_scores(query, frames).tolist(), strict=True):
        t = float(k["t"])
        i = index.get(shot, max(0, int(np.searchsorted(starts, t, side="right")) - 1))
        spans[i].frames.append((t, cos))
    for seg, cos in zip(texts, text_scores.tolist(), strict=True):
        start, stop = _segment_bounds(seg)
        for span in spans:
            if _touches(span, start, stop) and (span.text is None or cos > span.text[0]):
                span.text = (cos, str(seg.get("kind") or "asr"), str(seg["text"]))
    return spans


def grow(scores: Sequence[float | None], seed: int, taken: set[int], extend: float = EXTEND) -> tuple[int, int]:
    """The run [lo, hi] of spans around `seed`: a neighbour joins while it scores at least
    seed - extend * (seed - median of all scored spans); spans already `taken` never join."""
    known = [s for s in scores if s is not None]
    best = scores[seed]
    if best is None:
        return seed, seed
    floor = best - extend * (best - float(np.median(known)))
    lo = hi = seed

    def ok(j: int) -> bool:
        s = scores[j] if 0 <= j < len(scores) else None
        return j not in taken and s is not None and s >= floor

    while True:
        options = [j for j in (lo - 1, hi + 1) if ok(j)]
        if not options:
            return lo, hi
        j = max(options, key=lambda j: scores[j] or 0.0)
        lo, hi = min(lo, j), max(hi, j)


def _evidence(run: list[Span]) -> tuple[float, dict[str, Any]]:
    """The run's score (its seed's: the best span) and what decided it."""
    seed = max(run, key=lambda s: s.score if s.score is not None else -math.inf)
    frames = [f for s in run for f in s.frames]
    t = max(frames, key=lambda f: f[1])[0] if frames else None
    visual, text = seed.visual, seed.text
    if text is not None and (visual is None or text[0] > visual):
        evidence: dict[str, Any] = {"kind": EVIDENCE_KIND.get(text[1], text[1]), "text": text[2]}
        if t is not None:
            evidence["t"] = t
    else:
        evidence = {"kind": "keyframe", "t": max(seed.frames, key=lambda f: f[1])[0]}
    evidence["shots"] = len(run)
    return float(seed.score or 0.0), evidence


def shot_moments(spans: list[Span], n: int, extend: float = EXTEND) -> list[Moment]:
    """Up to `n` non-overlapping runs of spans, best seed first."""
    scores = [s.score for s in spans]
    taken: set[int] = set()
    out: list[Moment] = []
    order = sorted((i for i, s in enumerate(scores) if s is not None), key=lambda i: (-(scores[i] or 0.0), i))
    for seed in order:
        if len(out) >= n:
            break
        if seed in taken:
            continue
        lo, hi = grow(scores, seed, taken, extend)
        taken.update(range(lo, hi + 1))
        score, evidence = _evidence(spans[lo:hi + 1])
        out.append(Moment(start=round(spans[lo].start, 3), end=round(spans[hi].end, 3), score=round(score, 4),
                          evidence=evidence))
    return out


def window_moments(query: np.ndarray, frames: Sequence[dict[str, Any]], texts: Sequence[dict[str, Any]],
                   text_scores: np.ndarray, duration: float | None, n: int) -> list[Moment]:
    """The fallback without shots: keyframe windows (smoothed scores) and text segments compete;
    up to `n` non-overlapping ones, best first (a keyframe wins a tie)."""
    found: list[Moment] = []
    windows: list[tuple[float, float]] = []
    if frames:
        sm = smooth(_frame_scores(query, frames))
        windows = keyframe_windows([float(k["t"]) for k in frames], duration)
        found += [Moment(start=lo, end=hi, score=round(float(s), 4), evidence={"kind": "keyframe", "t": float(k["t"])})
                  for (lo, hi), s, k in zip(windows, sm.tolist(), frames, strict=True)]
    for seg, cos in zip(texts, text_scores.tolist(), strict=True):
        start, end = _segment_bounds(seg)
        if end <= start:  # read on one frame: that frame's window
            start, end = next(((lo, hi) for lo, hi in windows if lo <= start <= hi), (start, end))
        kind = str(seg.get("kind") or "asr")
        found.append(Moment(start=start, end=end, score=round(float(cos), 4),
                            evidence={"kind": EVIDENCE_KIND.get(kind, kind), "text": str(seg["text"])}))
    out: list[Moment] = []
    for m in sorted(found, key=lambda m: -m.score):
        if len(out) >= n:
            break
        if not any(m.start < o.end and o.start < m.end for o in out):
            out.append(m)
    return out


def top_moments(query: np.ndarray, keyframes: Sequence[dict[str, Any]], segments: Sequence[dict[str, Any]],
                duration: float | None, embed_texts: EmbedTexts | None = None, n: int = 1) -> list[Moment]:
    """Up to `n` non-overlapping moments of one video, best first. `query` is the raw text-encoder
    vector (the space of keyframe bridges and segment texts); without `embed_texts` only the
    keyframes count."""
    query = _unit(np.asarray(query, dtype=np.float32))
    frames = [k for k in keyframes if k.get("vector")]
    texts = [s for s in segments if str(s.get("text", "")).strip()] if embed_texts is not None else []
    text_scores = _text_scores(query, texts, embed_texts) if texts and embed_texts is not None else np.zeros(0, np.float32)
    shots = [_shot(k) for k in frames]
    if frames and all(s is not None for s in shots):
        spans = score_spans(query, frames, [s for s in shots if s is not None], texts, text_scores, duration)
        return shot_moments(spans, n)
    return window_moments(query, frames, texts, text_scores, duration, n)


def best_moment(query: np.ndarray, keyframes: Sequence[dict[str, Any]], segments: Sequence[dict[str, Any]],
                duration: float | None, embed_texts: EmbedTexts | None = None) -> Moment | None:
    """The single best moment (see `top_moments`), or None when the video has no evidence."""
    found = top_moments(query, keyframes, segments, duration, embed_texts, 1)
    return found[0] if found else None
