"""Temporal alignment: which runs of a query's keyframes show the same footage as a reference's.

Input: S, the (n_query x n_ref) inner products of L2-normalised keyframe fingerprints, and both
keyframe time arrays (seconds, ascending). Output: `Alignment`s, each a monotone chain of matches
(i, j) that reads as one copied segment.

Keyframes are few (3-16 a video) and fall at scene changes, so their indices say little about time:
two consecutive matches one index apart may be 0.5 s or 20 s apart. Every constraint is therefore
on *times*, never on index steps (as frame-rate-sampled methods do). Two consecutive matches
(i, j) -> (i', j') of one chain must satisfy

  i' > i and j' > j                                   (footage plays forward on both sides)
  0 < tq[i'] - tq[i] <= max_gap_s, tr[j'] - tr[j] <= max_gap_s   (no jump over unrelated footage)
  min_speed <= (tr[j'] - tr[j]) / (tq[i'] - tq[i]) <= max_speed  (a copy may be sped up or slowed)

and a chain's weight is the sum of its similarities, so a long consistent run outweighs one lucky
frame. Noise frames can reach 0.5-0.7, so every match needs `min_sim`; a chain of one keyframe has
no temporal evidence at all, so it needs the stricter `single_sim` (sparse keyframes make such
one-frame copies real: a short clip spliced in may hold one keyframe).

Two aligners share that chain search and differ in which cells are nodes and what a found segment
takes away:

- **TN** (temporal network, after Tan et al.'s partial near-duplicate detection, as in the VCSL
  benchmark): nodes are each query keyframe's `top_k` references above `min_sim`. Restricting to
  the top matches keeps the graph small and ignores the weak tail of a row. After a path is
  emitted, every node whose query *or* reference index lies inside its ranges is removed (and no
  later edge may jump across those ranges), so segments are disjoint on both axes.
- **DP** (a monotone-path dynamic programme, as VCSL's DP baseline): every cell above `min_sim` is
  a candidate, so a query keyframe whose true match is not among its top few (a repetitive scene
  with many look-alikes) still aligns. After a path is emitted, its query rows are zeroed out;
  the reference axis stays available, so a query that repeats the same source clip twice yields
  two segments.

Both find the heaviest chain by one pass over the query rows in order (the graph is a DAG ordered
by row), backtrack from the best end, take away what the aligner takes away, and repeat up to
`max_segments` times. Output is sorted by mean similarity, best first, and never overlaps on the
query axis. Cost per pass is O(sum over rows of row-nodes x nodes within max_gap_s before it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AlignParams:
    min_sim: float = 0.6  # a match must reach this to be an edge/node at all
    single_sim: float = 0.85  # a one-keyframe segment needs this
    top_k: int = 5  # TN: matches kept per query keyframe
    max_gap_s: float = 10.0  # largest time jump between consecutive matches on either axis
    min_speed: float = 0.5  # allowed ratio (ref time step / query time step) of a path
    max_speed: float = 2.0
    max_segments: int = 8

    def __post_init__(self) -> None:
        # Chain weights are similarities, so they must be positive for "longer beats shorter"
        # (and the single-frame rule) to hold; see `_heaviest_chain`.
        if not 0 < self.min_sim <= self.single_sim:
            raise ValueError(f"need 0 < min_sim <= single_sim, got {self.min_sim} and {self.single_sim}")
        if self.top_k < 1 or self.max_segments < 1:
            raise ValueError("top_k and max_segments must be at least 1")
        if self.max_gap_s <= 0 or not 0 < self.min_speed <= self.max_speed:
            raise ValueError("need max_gap_s > 0 and 0 < min_speed <= max_speed")


@dataclass(frozen=True)
class Alignment:
    q: tuple[int, int]  # first and last query keyframe index (inclusive)
    r: tuple[int, int]  # first and last reference keyframe index (inclusive)
    score: float  # mean similarity of the matches on the path
    matches: tuple[tuple[int, int], ...]  # the (i, j) pairs on the path, in order


def _prepare(sim: np.ndarray, q_times: np.ndarray, r_times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated float arrays; NaN similarities (a zero fingerprint) become -1, never a match."""
    s = np.asarray(sim, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"similarity matrix must be 2-D, got shape {s.shape}")
    tq = np.asarray(q_times, dtype=np.float64).reshape(-1)
    tr = np.asarray(r_times, dtype=np.float64).reshape(-1)
    if len(tq) != s.shape[0] or len(tr) != s.shape[1]:
        raise ValueError(f"{len(tq)} query and {len(tr)} reference times for a {s.shape} matrix")
    if np.any(np.diff(tq) < 0) or np.any(np.diff(tr) < 0):
        raise ValueError("keyframe times must be ascending")
    return np.where(np.isnan(s), -1.0, s), tq, tr


def _blocked_before(blocked: np.ndarray) -> np.ndarray:
    """counts[x] = blocked indices below x, so (a, b) exclusive holds counts[b] - counts[a + 1]."""
    return np.concatenate([[0], np.cumsum(blocked)])


def _heaviest_chain(
    ii: np.ndarray, jj: np.ndarray, w: np.ndarray, tq: np.ndarray, tr: np.ndarray, p: AlignParams,
    row_blocked: np.ndarray, col_blocked: np.ndarray,
) -> np.ndarray | None:
    """Node indices of the heaviest valid chain (row-major nodes `ii`, `jj` with weights `w`), or
    None. No edge may jump across a blocked row or column: that would let a later segment span
    one already emitted.

    Weights are positive, so a node with any edge lies on a chain heavier than itself: the best
    chain is a single node only when that node has no edge at all, and such a node competes only
    if it reaches `single_sim` (dropping weak isolated nodes here saves one pass per noise frame).
    """
    n = len(w)
    best = w.copy()
    pred = np.full(n, -1)
    linked = np.zeros(n, dtype=bool)
    rows_before, cols_before = _blocked_before(row_blocked), _blocked_before(col_blocked)
    node_tq = tq[ii]
    _, starts = np.unique(ii, return_index=True)
    ends = np.append(starts[1:], n)
    for s, e in zip(starts, ends):
        i = ii[s]
        ps = int(np.searchsorted(node_tq[:s], tq[i] - p.max_gap_s, side="left"))
        if ps == s:
            continue
        pi, pj, cj = ii[ps:s], jj[ps:s], jj[s:e]
        dq = tq[i] - tq[pi]
        row_ok = (dq > 0) & (rows_before[i] == rows_before[pi + 1])
        dr = tr[cj][:, None] - tr[pj][None, :]
        # dr >= min_speed * dq > 0 also keeps j' > j: reference times ascend.
        ok = (row_ok[None, :] & (dr <= p.max_gap_s)
              & (dr >= p.min_speed * dq[None, :]) & (dr <= p.max_speed * dq[None, :])
              & (cols_before[cj][:, None] == cols_before[pj + 1][None, :]))
        if not ok.any():
            continue
        cand = np.where(ok, best[ps:s][None, :], -np.inf)
        arg = cand.argmax(axis=1)
        top = cand[np.arange(len(cj)), arg]
        has = np.isfinite(top)
        best[s:e] = w[s:e] + np.where(has, top, 0.0)
        pred[s:e] = np.where(has, ps + arg, -1)
        linked[s:e] |= has
        linked[ps:s] |= ok.any(axis=0)
    ends_ok = np.where(linked | (w >= p.single_sim), best, -np.inf)
    if not len(ends_ok) or not np.isfinite(ends_ok.max()):
        return None
    chain = [int(ends_ok.argmax())]
    while pred[chain[-1]] >= 0:
        chain.append(int(pred[chain[-1]]))
    return np.array(chain[::-1])


def _align(sim: np.ndarray, q_times: np.ndarray, r_times: np.ndarray, params: AlignParams,
           nodes: Callable[[np.ndarray], np.ndarray], block_refs: bool) -> list[Alignment]:
    """Repeated heaviest-chain search over the cells `nodes(S)` marks; see the module docstring."""
    s, tq, tr = _prepare(sim, q_times, r_times)
    if s.size == 0:
        return []
    ii, jj = np.nonzero(nodes(s))  # row-major: the chain search relies on it
    w = s[ii, jj]
    alive = np.ones(len(w), dtype=bool)
    row_blocked = np.zeros(s.shape[0], dtype=bool)
    col_blocked = np.zeros(s.shape[1], dtype=bool)
    found: list[Alignment] = []
    while len(found) < params.max_segments and alive.any():
        idx = np.flatnonzero(alive)
        chain = _heaviest_chain(ii[idx], jj[idx], w[idx], tq, tr, params, row_blocked, col_blocked)
        if chain is None:
            break
        ci, cj = ii[idx[chain]], jj[idx[chain]]
        q0, q1, r0, r1 = int(ci[0]), int(ci[-1]), int(cj[0]), int(cj[-1])
        found.append(Alignment((q0, q1), (r0, r1), float(w[idx[chain]].mean()),
                               tuple((int(a), int(b)) for a, b in zip(ci, cj))))
        taken = (ii >= q0) & (ii <= q1)
        row_blocked[q0:q1 + 1] = True
        if block_refs:
            taken |= (jj >= r0) & (jj <= r1)
            col_blocked[r0:r1 + 1] = True
        alive &= ~taken
    return sorted(found, key=lambda a: (-a.score, a.q[0]))


def tn_align(sim: np.ndarray, q_times: np.ndarray, r_times: np.ndarray, params: AlignParams = AlignParams()) -> list[Alignment]:
    """Temporal-network alignment: nodes are each row's top_k matches above min_sim; a found
    segment removes its query and reference ranges."""

    def top_k_nodes(s: np.ndarray) -> np.ndarray:
        k = min(params.top_k, s.shape[1])
        keep = np.zeros(s.shape, dtype=bool)
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        np.put_along_axis(keep, top, True, axis=1)
        return keep & (s >= params.min_sim)

    return _align(sim, q_times, r_times, params, top_k_nodes, block_refs=True)


def dp_align(sim: np.ndarray, q_times: np.ndarray, r_times: np.ndarray, params: AlignParams = AlignParams()) -> list[Alignment]:
    """Dynamic-programming alignment: every cell above min_sim is a candidate; a found segment
    zeroes out its query rows only."""
    return _align(sim, q_times, r_times, params, lambda s: s >= params.min_sim, block_refs=False)


ALIGNERS: dict[str, Callable[..., list[Alignment]]] = {"tn": tn_align, "dp": dp_align}
