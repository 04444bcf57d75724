"""Same-source search: which catalogue videos share footage with a query video, and where.

1. **Candidates**: every query keyframe (and its mirror image, so a flipped copy is found) is
   searched in the frame index (`FrameStore.search`, one batched ANN call); each catalogue video
   gets a vote per query keyframe, its best similarity above `vote_sim`; the best-voted
   `candidates` videos go on.
2. **Similarity matrix**: the candidate's stored fingerprints against the query's (the better of
   the plain and mirrored query frame per cell).
3. **Alignment**: TN or DP (plugins/copies/align.py) finds the copied runs of keyframes.
4. **Localisation**: keyframes are sparse (one or a few per shot), so a run of matched keyframes
   is widened to the query shots that hold its first and last keyframe: a copy spliced into other
   footage starts and ends at a cut, which the decoder found. The reference span is the query span
   mapped through the run's time offset and speed (one keyframe: speed 1), clipped to the
   reference's own extent.

The steps are pure functions over arrays except the two store calls, so they are unit-tested on
hand-made frame sets; `CopySearcher` only wires them to a store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vidsearch.core.frames import FrameHit, FrameSet, FrameStore
from vidsearch.core.settings import CopySettings
from vidsearch.plugins.copies.align import ALIGNERS, Alignment, AlignParams


@dataclass(frozen=True)
class CopyParams:
    method: str = "tn"  # tn | dp
    k: int = 16  # nearest catalogue keyframes per query keyframe
    vote_sim: float = 0.6  # a neighbour below this casts no vote
    candidates: int = 10  # videos aligned per query
    min_score: float = 0.0  # matches scoring below this are dropped
    min_segment_score: float = 0.0  # segments (mean similarity along the run) below this are dropped
    # Similarity normalisation: every query keyframe's similarities minus `background` times its
    # similarity to the `background_rank`-th nearest catalogue *video* (its best keyframe there).
    # A frame of a common kind (white backgrounds, blank canvases, faces) is close to many
    # catalogue videos, a distinctive one to few; a copy stands out from the frame's own
    # background, not from one threshold for all frames. 0: off.
    background: float = 0.0
    background_rank: int = 3
    align: AlignParams = field(default_factory=AlignParams)

    def __post_init__(self) -> None:
        if self.method not in ALIGNERS:
            raise ValueError(f"unknown alignment method {self.method!r}: choose from {', '.join(ALIGNERS)}")


def copy_params(cfg: CopySettings) -> CopyParams:
    """Search parameters from the `[copies]` settings."""
    return CopyParams(method=cfg.method, k=cfg.k, vote_sim=cfg.vote_sim, candidates=cfg.candidates, min_score=cfg.min_score,
                      min_segment_score=cfg.min_segment_score, background=cfg.background,
                      background_rank=cfg.background_rank,
                      align=AlignParams(min_sim=cfg.min_sim, single_sim=cfg.single_sim))


@dataclass(frozen=True)
class CopySegment:
    query_start: float
    query_end: float
    reference_start: float
    reference_end: float
    score: float

    def as_dict(self) -> dict[str, float]:
        return {"query_start": round(self.query_start, 3), "query_end": round(self.query_end, 3),
                "reference_start": round(self.reference_start, 3), "reference_end": round(self.reference_end, 3),
                "score": round(self.score, 4)}


@dataclass(frozen=True)
class CopyMatch:
    reference_id: str
    score: float
    segments: list[CopySegment]

    def as_dict(self) -> dict[str, object]:
        return {"reference_id": self.reference_id, "score": round(self.score, 4),
                "segments": [s.as_dict() for s in self.segments]}


def backgrounds(hits: Sequence[Sequence[FrameHit]], rank: int) -> np.ndarray:
    """Per query row, its best similarity to the `rank`-th nearest catalogue video among the hits:
    the level an unrelated video reaches for this frame. When fewer videos came back, the row's
    lowest hit, the most any video outside the hits can reach (all k hits may be keyframes of one
    long static video); 0 when none came back.

    Ranked by video, not by keyframe, because the k-th nearest *keyframe* of a frame from a
    static or slow video (a fixed camera, a long stamp shot) is usually another keyframe of that
    same video: the background would then equal the copy's own similarity and normalise every
    true match of such a video away (measured on the copy benchmark's validation split)."""
    out = np.zeros(len(hits), np.float32)
    for i, row in enumerate(hits):
        per_video: dict[str, float] = {}
        for hit in row:
            if hit.score > per_video.get(hit.video_id, -np.inf):
                per_video[hit.video_id] = hit.score
        ranked = sorted(per_video.values(), reverse=True)
        if len(ranked) >= rank:
            out[i] = ranked[rank - 1]
        elif row:
            out[i] = min(hit.score for hit in row)
    return out


def votes(hits: Sequence[Sequence[FrameHit]], n_query: int, vote_sim: float, shift: np.ndarray | None = None) -> dict[str, float]:
    """Per catalogue video, the sum over query keyframes of its best neighbour similarity (rows
    beyond `n_query` are mirrored frames and vote for their original row), each row's
    similarities lowered by its `shift` (the normalisation; none by default)."""
    best: dict[tuple[int, str], float] = {}
    for row, row_hits in enumerate(hits):
        q = row % n_query if n_query else row
        lower = float(shift[row]) if shift is not None else 0.0
        for hit in row_hits:
            score = hit.score - lower
            if score >= vote_sim and score > best.get((q, hit.video_id), -np.inf):
                best[(q, hit.video_id)] = score
    out: dict[str, float] = {}
    for (_, vid), score in best.items():
        out[vid] = out.get(vid, 0.0) + score
    return out


def similarity(query: np.ndarray, mirrored: np.ndarray | None, reference: np.ndarray,
               shift: np.ndarray | None = None) -> np.ndarray:
    """Query x reference keyframe similarities, the better of plain and mirrored per cell, each
    row lowered by `shift` (plain rows first, then mirrored rows, as searched)."""
    n = len(query)
    lower = shift if shift is not None else np.zeros(n + (len(mirrored) if mirrored is not None else 0), np.float32)
    sim = query @ reference.T - lower[:n, None]
    if mirrored is not None and len(mirrored) == n:
        sim = np.maximum(sim, mirrored @ reference.T - lower[n:, None])
    return np.nan_to_num(sim, nan=-1.0)


def _shot(frames: FrameSet, i: int) -> tuple[float, float]:
    """The shot holding keyframe i; without shots, halfway to its neighbours (a keyframe stands
    for the time around it, and a zero-length span could never overlap anything)."""
    if frames.shots:
        return frames.shots[i]
    t = frames.times
    start = (float(t[i - 1]) + float(t[i])) / 2 if i > 0 else max(0.0, float(t[i]) - 0.5)
    end = (float(t[i]) + float(t[i + 1])) / 2 if i + 1 < len(t) else float(t[i]) + 0.5
    return start, end


def _extent(frames: FrameSet) -> float:
    ends = [e for _, e in frames.shots] if frames.shots else []
    return max([*ends, float(frames.times[-1]) if len(frames.times) else 0.0])


def localise(a: Alignment, query: FrameSet, ref: FrameSet) -> CopySegment:
    """A run of matched keyframes -> (query span, reference span) in seconds; see the module
    docstring. The speed is the slope of reference time over query time along the run."""
    (i0, j0), (i1, j1) = a.matches[0], a.matches[-1]
    tq0, tq1 = float(query.times[i0]), float(query.times[i1])
    tr0, tr1 = float(ref.times[j0]), float(ref.times[j1])
    speed = (tr1 - tr0) / (tq1 - tq0) if tq1 - tq0 > 1e-6 and tr1 - tr0 > 1e-6 else 1.0
    q_start, q_end = _shot(query, i0)[0], _shot(query, i1)[1]
    r_start = max(0.0, tr0 - (tq0 - q_start) * speed)
    r_end = min(_extent(ref), tr1 + (q_end - tq1) * speed)
    return CopySegment(q_start, q_end, r_start, max(r_start, r_end), a.score)


def match_reference(query: FrameSet, mirrored: np.ndarray | None, ref: FrameSet, params: CopyParams,
                    shift: np.ndarray | None = None) -> CopyMatch | None:
    if not len(query.times) or not len(ref.times):
        return None
    sim = similarity(query.vectors, mirrored, ref.vectors, shift)
    found = [a for a in ALIGNERS[params.method](sim, query.times, ref.times, params.align)
             if a.score >= params.min_segment_score]
    segments = sorted((localise(a, query, ref) for a in found), key=lambda s: s.query_start)
    if not segments:
        return None
    # The match's score: its best segment, lifted a little by how much of the query it covers,
    # so a long copy outranks a single shared frame of equal similarity.
    covered = sum(s.query_end - s.query_start for s in segments) / max(_extent(query), 1e-6)
    score = max(s.score for s in segments) + 0.05 * min(1.0, covered)
    return CopyMatch(ref.video_id, score, segments) if score >= params.min_score else None


class CopySearcher:
    def __init__(self, store: FrameStore, params: CopyParams | None = None) -> None:
        self.store = store
        self.params = params or CopyParams()

    def search(self, query: FrameSet, exclude: Sequence[str] = (), mirrored: np.ndarray | None = None,
               limit: int = 10) -> list[CopyMatch]:
        """Matches best first. `mirrored`: fingerprints of the query keyframes flipped left-right."""
        if not len(query.times):
            return []
        rows = query.vectors if mirrored is None else np.concatenate([query.vectors, mirrored])
        hits = self.store.search(rows, self.params.k, exclude=exclude)
        shift = self.params.background * backgrounds(hits, self.params.background_rank) if self.params.background else None
        ranked = sorted(votes(hits, len(query.times), self.params.vote_sim, shift).items(), key=lambda kv: -kv[1])
        chosen = [vid for vid, _ in ranked[: self.params.candidates]]
        refs = self.store.frames(chosen) if chosen else {}
        out = [m for vid in chosen if vid in refs
               if (m := match_reference(query, mirrored, refs[vid], self.params, shift)) is not None]
        return sorted(out, key=lambda m: -m.score)[:limit]
