"""Losses of the balanced model (docs/architecture.md, "Algorithms"), as pure functions of score matrices.

Notation: S = q m^T of unit vectors (cosines), tau the temperature. `pos` marks co-relevant pairs
(identical captions in one batch): they are neither positives nor negatives of each other, so the
model is not taught to separate two photos of the same thing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NEG = -1e4  # masked logit; finite so 0 * NEG stays 0 in autograd


def _masked(logits: torch.Tensor, same: torch.Tensor | None) -> torch.Tensor:
    if same is None:
        return logits
    off = same & ~torch.eye(len(logits), dtype=torch.bool, device=logits.device)
    return logits.masked_fill(off, NEG)


def info_nce_bi(scores: torch.Tensor, tau: float, same: torch.Tensor | None = None,
                bias: torch.Tensor | None = None, valid: torch.Tensor | None = None) -> torch.Tensor:
    """In-batch softmax both ways (query->video and video->query).

    `bias` (per video) adds NCL's beta to the query->video logits; `valid` limits the loss to rows
    and columns whose video has the modality (auxiliary audio loss)."""
    logits = scores / tau
    if valid is not None:
        idx = valid.nonzero().squeeze(1)
        if len(idx) < 2:
            return scores.new_zeros(())
        logits, same = logits[idx][:, idx], None if same is None else same[idx][:, idx]
        bias = None if bias is None else bias[idx]
    logits = _masked(logits, same)
    target = torch.arange(len(logits), device=logits.device)
    q2v = logits if bias is None else logits + bias[None, :]
    return 0.5 * (F.cross_entropy(q2v, target) + F.cross_entropy(logits.T, target))


def shuffle_indices(n: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, k) partner indices j != i: k distinct non-zero rotations of a random permutation."""
    if n < 2:
        raise ValueError("modality shuffling needs a batch of at least 2")
    k = min(k, n - 1)
    perm = torch.randperm(n, generator=generator)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(n)
    shifts = torch.randperm(n - 1, generator=generator)[:k] + 1
    pos = (inv[:, None] + shifts[None, :]) % n  # position of i in perm, moved by a non-zero shift
    return perm[pos]


def dynamic_margin(s_qv: torch.Tensor, scale: float, signed: bool = False) -> torch.Tensor:
    """delta_i from the query-vision tower, stop-gradient: how much more the query matches its own
    frames than the batch's frames on average. When the true frames do not match the query
    (delta ~ 0) a shuffled negative costs little; when they clearly do, shuffling must cost.
    `signed` lets delta go negative, so for a video whose frames are worse than average for its
    own query the shuffled negatives become easier than plain ones (shuffling then costs nothing)."""
    s = s_qv.detach()
    gap = s.diagonal() - s.mean(dim=1)
    return scale * (gap if signed else torch.relu(gap))


def shuffled_negatives_loss(s_pos: torch.Tensor, s_shuf: torch.Tensor, delta: torch.Tensor, tau: float) -> torch.Tensor:
    """L_ms = -log(e^{s(q,m)/tau} / (e^{s(q,m)/tau} + sum_j e^{(s(q,m_ij)+delta_i)/tau}))."""
    logits = torch.cat([s_pos[:, None], s_shuf + delta[:, None]], dim=1) / tau
    return -(logits[:, 0] - torch.logsumexp(logits, dim=1)).mean()


def hard_pairs(scores: torch.Tensor) -> torch.Tensor:
    """H = {(i, j), j != i : S_ij > S_ii or S_ij > S_jj} as a boolean matrix."""
    diag = scores.diagonal()
    hard = (scores > diag[:, None]) | (scores > diag[None, :])
    return hard & ~torch.eye(len(scores), dtype=torch.bool, device=scores.device)


def negnce(scores: torch.Tensor, tau: float) -> torch.Tensor:
    """mean_i(-log P_ii) + 0.5 * mean_{(i,j) in H}(-log(1 - P_ij)), P = softmax_row(S/tau)."""
    logp = F.log_softmax(scores / tau, dim=1)
    loss = -logp.diagonal().mean()
    hard = hard_pairs(scores.detach())
    if hard.any():
        p = logp.exp()[hard].clamp(max=1 - 1e-6)
        loss = loss + 0.5 * (-torch.log1p(-p)).mean()
    return loss
