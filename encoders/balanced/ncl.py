"""NCL normalisation: per-video biases from Sinkhorn, so no video wins more than its share.

Pure tensor math, shared by training (batch + queue of past queries) and serving (a bank of
logged/training queries). Log domain throughout: exp(s/tau) overflows float32 for tau ~ 0.05.

With K_ij = exp(s_ij/tau) the iteration u_i = 1/sum_j K_ij w_j, w_j = c/sum_i u_i K_ij makes the
plan P_ij = u_i K_ij w_j have row sums 1 (each query spends one unit of probability) and column
sums c = N_q/N_v (every video receives the same). beta_j = log w_j; rank by s/tau + beta_j.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SinkhornResult:
    log_u: torch.Tensor  # (N_q,) query scalings
    beta: torch.Tensor  # (N_v,) video biases = log w
    iterations: int
    converged: bool


def sinkhorn_biases(scores: torch.Tensor, tau: float, iters: int = 2000, tol: float = 1e-6) -> SinkhornResult:
    """Biases for the columns (videos) of `scores` (N_q, N_v) of cosine similarities."""
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty (queries, videos) matrix, got {tuple(scores.shape)}")
    logk = scores.double() / tau
    n_q, n_v = logk.shape
    log_c = math.log(n_q / n_v)
    log_w = torch.zeros(n_v, dtype=torch.float64)
    log_u = torch.zeros(n_q, dtype=torch.float64)
    converged = False
    it = 0
    for it in range(1, iters + 1):
        log_u = -torch.logsumexp(logk + log_w[None, :], dim=1)
        new_w = log_c - torch.logsumexp(logk + log_u[:, None], dim=0)
        delta = float((new_w - log_w).abs().max())
        log_w = new_w
        if delta < tol:
            converged = True
            break
    return SinkhornResult(log_u.to(scores.dtype), log_w.to(scores.dtype), it, converged)


def plan(scores: torch.Tensor, tau: float, result: SinkhornResult) -> torch.Tensor:
    """P_ij = u_i K_ij w_j (for checking marginals)."""
    return torch.exp(result.log_u[:, None].double() + scores.double() / tau + result.beta[None, :].double())


def half_step_beta(log_u: torch.Tensor, new_scores: torch.Tensor, tau: float, n_videos: int) -> torch.Tensor:
    """Bias of newly indexed videos from one half-step with the current u (bank queries x new videos),
    until the periodic task recomputes all biases."""
    log_c = math.log(log_u.shape[0] / n_videos)
    return (log_c - torch.logsumexp(new_scores.double() / tau + log_u[:, None].double(), dim=0)).to(new_scores.dtype)


def augment_videos(vectors: torch.Tensor, beta: torch.Tensor, tau: float) -> torch.Tensor:
    """[v; tau*beta]: inner product with [q; 1] equals s + tau*beta, i.e. tau * the NCL score."""
    return torch.cat([vectors, (tau * beta)[:, None].to(vectors.dtype)], dim=1)


def augment_queries(vectors: torch.Tensor) -> torch.Tensor:
    return torch.cat([vectors, torch.ones(vectors.shape[0], 1, dtype=vectors.dtype)], dim=1)


def ncl_scores(queries: np.ndarray, videos: np.ndarray, bank: np.ndarray, tau: float) -> np.ndarray:
    """Cosine scores shifted by tau*beta, beta from the bank against these videos: the ranking of
    s/tau + beta, kept on the cosine scale so it can be fused with other routes."""
    import numpy as np

    beta = sinkhorn_biases(torch.from_numpy(bank @ videos.T), tau).beta.numpy()
    return (queries @ videos.T + tau * beta[None, :]).astype(np.float32)
