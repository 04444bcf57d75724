"""Recompute NCL biases for a whole index: the function the beat schedule runs.

bank (query log, or the model's training queries) x every video's fused vector -> Sinkhorn ->
beta_j -> each store's `vec_ncl` = [fused; tau*beta_j] (`VideoStore.write_ncl`). Rewrites keep each
document's own version and skip a video changed since its vector was read, so a recompute can
never make a newer event look stale, nor resurrect an older state.
A new video gets its beta from one half-step with the last run's u (`NclState.bias`, applied by
the indexing pipeline) until the next recompute balances everything again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.core.store import VideoStore
from vidsearch.encoders.balanced.ncl import half_step_beta, sinkhorn_biases

log = logging.getLogger(__name__)


@dataclass
class NclReport:
    videos: int
    bank: int
    tau: float
    updated: dict[str, int]
    beta_min: float
    beta_max: float
    state: NclState | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "state"}


@dataclass
class NclState:
    """What a new video needs for its bias before the next recompute: the bank, the query
    scalings u from the last Sinkhorn run, tau, and how many videos that run balanced."""

    bank: np.ndarray
    log_u: np.ndarray
    tau: float
    n_videos: int

    def bias(self, fused: np.ndarray) -> float:
        """tau * beta from one half-step with the current u (0 for an empty vector)."""
        if not np.any(fused):
            return 0.0
        scores = (self.bank @ fused.astype(np.float32))[:, None]
        beta = half_step_beta(self.log_u, scores, self.tau, self.n_videos)
        return float(self.tau * beta[0])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part.npz")
        np.savez(tmp, bank=self.bank, log_u=self.log_u, tau=self.tau, n_videos=self.n_videos)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> NclState:
        with np.load(path) as z:
            return cls(z["bank"], z["log_u"], float(z["tau"]), int(z["n_videos"]))


def compute_bias(vectors: dict[str, np.ndarray], bank: np.ndarray, tau: float) -> tuple[dict[str, float], NclState]:
    ids = list(vectors)
    mat = np.stack([vectors[i] for i in ids]).astype(np.float32)
    bank = bank.astype(np.float32)
    res = sinkhorn_biases(bank @ mat.T, tau, iters=500, tol=1e-5)
    beta = res.beta
    state = NclState(bank, res.log_u.astype(np.float32), tau, len(ids))
    return {vid: float(tau * b) for vid, b in zip(ids, beta, strict=True)}, state


def recompute(bank: np.ndarray, tau: float, stores: Sequence[VideoStore], version: str | None = None) -> NclReport:
    """Balance every video of the catalogue (`version`, default: behind the alias) and write the
    biases into each store. The vectors are read from the first store; a video another store
    holds but the first does not gets bias 0 there (it is balanced at the next recompute)."""
    if len(bank) == 0:
        raise ValueError("the NCL query bank is empty (no logged queries and no model bank)")
    if not stores:
        return NclReport(0, len(bank), tau, {}, 0.0, 0.0)
    vectors = stores[0].vectors("vec_fused", version)
    if not vectors:
        return NclReport(0, len(bank), tau, {}, 0.0, 0.0)
    bias, state = compute_bias(vectors, bank, tau)
    updated = {store.name: store.write_ncl(bias, version) for store in stores}
    values = np.fromiter(bias.values(), np.float64)
    return NclReport(len(vectors), len(bank), tau, updated, float(values.min() / tau), float(values.max() / tau), state)
