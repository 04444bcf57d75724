"""NCL normalisation: per-video biases from Sinkhorn, so no video wins more than its share.

Pure numpy math (no torch: the indexer and the API import it), shared by training (batch + queue of past queries) and serving (a bank of
logged/training queries). Log domain throughout: exp(s/tau) overflows float32 for tau ~ 0.05.

With K_ij = exp(s_ij/tau) the iteration u_i = 1/sum_j K_ij w_j, w_j = c/sum_i u_i K_ij makes the
plan P_ij = u_i K_ij w_j have row sums 1 (each query spends one unit of probability) and column
sums c = N_q/N_v (every video receives the same). beta_j = log w_j; rank by s/tau + beta_j.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass
class SinkhornResult:
    log_u: np.ndarray  # (N_q,) query scalings
    beta: np.ndarray  # (N_v,) video biases = log w
    iterations: int
    converged: bool


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    """log(sum(exp(x))) along `axis`, shifted by the max so exp never overflows (numpy has no
    logsumexp of its own and scipy is not a dependency)."""
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(x - top), axis=axis))


def _scores(scores: ArrayLike) -> np.ndarray:
    """Accepts numpy arrays and CPU torch tensors alike (training passes detached tensors)."""
    return np.asarray(scores)


def sinkhorn_biases(scores: ArrayLike, tau: float, iters: int = 2000, tol: float = 1e-6) -> SinkhornResult:
    """Biases for the columns (videos) of `scores` (N_q, N_v) of cosine similarities."""
    arr = _scores(scores)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty (queries, videos) matrix, got {tuple(arr.shape)}")
    out_dtype = arr.dtype if arr.dtype.kind == "f" else np.float32
    logk = arr.astype(np.float64) / tau
    n_q, n_v = logk.shape
    log_c = math.log(n_q / n_v)
    log_w = np.zeros(n_v)
    log_u = np.zeros(n_q)
    converged = False
    it = 0
    for it in range(1, iters + 1):  # noqa: B007 - `it` after the loop is the iteration count returned
        log_u = -_logsumexp(logk + log_w[None, :], axis=1)
        new_w = log_c - _logsumexp(logk + log_u[:, None], axis=0)
        delta = float(np.max(np.abs(new_w - log_w)))
        log_w = new_w
        if delta < tol:
            converged = True
            break
    return SinkhornResult(log_u.astype(out_dtype), log_w.astype(out_dtype), it, converged)


def plan(scores: ArrayLike, tau: float, result: SinkhornResult) -> np.ndarray:
    """P_ij = u_i K_ij w_j (for checking marginals)."""
    s = _scores(scores).astype(np.float64)
    return np.exp(result.log_u[:, None].astype(np.float64) + s / tau + result.beta[None, :].astype(np.float64))


def half_step_beta(log_u: ArrayLike, new_scores: ArrayLike, tau: float, n_videos: int) -> np.ndarray:
    """Bias of newly indexed videos from one half-step with the current u (bank queries x new videos),
    until the periodic task recomputes all biases."""
    u = np.asarray(log_u, dtype=np.float64)
    s = _scores(new_scores)
    log_c = math.log(u.shape[0] / n_videos)
    out = log_c - _logsumexp(s.astype(np.float64) / tau + u[:, None], axis=0)
    return out.astype(s.dtype if s.dtype.kind == "f" else np.float32)


def augment_videos(vectors: np.ndarray, beta: np.ndarray, tau: float) -> np.ndarray:
    """[v; tau*beta]: inner product with [q; 1] equals s + tau*beta, i.e. tau * the NCL score."""
    return np.concatenate([vectors, (tau * beta)[:, None].astype(vectors.dtype)], axis=1)


def augment_queries(vectors: np.ndarray) -> np.ndarray:
    return np.concatenate([vectors, np.ones((vectors.shape[0], 1), dtype=vectors.dtype)], axis=1)


def ncl_scores(queries: np.ndarray, videos: np.ndarray, bank: np.ndarray, tau: float) -> np.ndarray:
    """Cosine scores shifted by tau*beta, beta from the bank against these videos: the ranking of
    s/tau + beta, kept on the cosine scale so it can be fused with other routes."""
    beta = sinkhorn_biases(bank @ videos.T, tau).beta
    return (queries @ videos.T + tau * beta[None, :]).astype(np.float32)
