"""Training of the balanced model: L = L_bi + a*L_v + b*L_t + c*L_a + g*L_ms (docs/architecture.md, "Algorithms").

Inputs are precomputed base features, so an epoch over a few hundred videos takes well under a
second on 2 cores; early stopping on validation R@sum picks the epoch. `fusion_plain` is the same
model trained with g = 0 and no margin: the ablation that shows what shuffling buys.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from vidsearch.encoders.balanced.inputs import VideoArrays
from vidsearch.encoders.balanced.losses import (
    NEG,
    dynamic_margin,
    info_nce_bi,
    negnce,
    shuffle_indices,
    shuffled_negatives_loss,
)
from vidsearch.encoders.balanced.metrics import subset_metrics
from vidsearch.encoders.balanced.ncl import sinkhorn_biases
from vidsearch.encoders.balanced.towers import ModelConfig, QueryTower, VideoTower

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    epochs: int = 80
    patience: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    tau: float = 0.05
    a_vision: float = 0.5
    b_text: float = 0.5
    c_audio: float = 0.25
    g_shuffle: float = 0.3
    shuffles: int = 4
    shuffle_gate_grad: bool = False  # chosen on the validation split with `vidsearch ablation`: letting L_ms train the gate costs text-rich recall
    margin: Literal["dynamic", "signed", "fixed", "none"] = "dynamic"
    margin_scale: float = 0.5
    fixed_margin: float = 0.1
    negnce: bool = False
    ncl_train: bool = False
    ncl_queue: int = 256
    model: ModelConfig = field(default_factory=ModelConfig)

    def to_dict(self) -> dict:
        return asdict(self)


VARIANTS: dict[str, dict] = {
    "balanced": {},
    "fusion_plain": {"g_shuffle": 0.0, "margin": "none"},
}


@dataclass
class Split:
    """One split, ready for the towers: video arrays, one query per caption, relevance as indices."""

    arrays: VideoArrays
    query_vecs: np.ndarray  # (n_queries, 384) MiniLM
    relevant: list[list[int]]
    subsets: list[str]
    video_query: np.ndarray  # (n_videos,) index of each video's own query (training pairs)


@dataclass
class TrainResult:
    video: VideoTower
    query: QueryTower
    best_epoch: int
    val: dict
    history: list[dict]


@dataclass
class _Best:
    """The best validation epoch so far, with both towers' weights to restore after early stopping."""

    rsum: float = -1.0
    epoch: int = -1
    val: dict = field(default_factory=dict)
    state: tuple[dict[str, Any], dict[str, Any]] | None = None


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


@torch.no_grad()
def embed(video: VideoTower, query: QueryTower, split: Split) -> tuple[np.ndarray, np.ndarray]:
    video.eval(), query.eval()
    a = split.arrays
    m, *_ = video(_t(a.text), _t(a.vision), _t(a.audio), _t(a.present))
    return m.numpy(), query(_t(split.query_vecs)).numpy()


def validate(video: VideoTower, query: QueryTower, split: Split) -> dict:
    m, q = embed(video, query, split)
    return subset_metrics(q @ m.T, split.relevant, split.subsets)


def train(train_split: Split, val_split: Split, cfg: TrainConfig,
          on_epoch: Callable[[dict], None] | None = None, checkpoint_dir: Path | None = None) -> TrainResult:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    video, query = VideoTower(cfg.model), QueryTower(cfg.model)
    params = list(video.parameters()) + list(query.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    a = train_split.arrays
    text, vision, audio, present = _t(a.text), _t(a.vision), _t(a.audio), _t(a.present)
    qvecs = _t(train_split.query_vecs[train_split.video_query])
    group = torch.from_numpy(train_split.video_query.astype(np.int64))
    queue = torch.zeros(0, cfg.model.dim)
    best = _Best()
    history: list[dict] = []
    for epoch in range(cfg.epochs):
        video.train(), query.train()
        order = torch.randperm(len(a), generator=gen)
        losses = []
        for start in range(0, len(order), cfg.batch_size):
            b = order[start:start + cfg.batch_size]
            if len(b) < 2:
                continue
            loss, queue = _step(video, query, cfg, gen, text[b], vision[b], audio[b], present[b], qvecs[b], group[b], queue)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            losses.append(float(loss.detach()))
        val = validate(video, query, val_split)
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "val_rsum": val["all"]["rsum"],
               "val_rsum_text_poor": val["text_poor"]["rsum"]}
        history.append(row)
        if on_epoch:
            on_epoch(row)
        if checkpoint_dir is not None:
            save_checkpoint(checkpoint_dir / "last.pt", video, query, cfg, row)
        if val["all"]["rsum"] > best.rsum:
            best = _Best(rsum=val["all"]["rsum"], epoch=epoch, val=val,
                         state=(copy.deepcopy(video.state_dict()), copy.deepcopy(query.state_dict())))
            if checkpoint_dir is not None:
                save_checkpoint(checkpoint_dir / "best.pt", video, query, cfg, row)
        elif epoch - best.epoch >= cfg.patience:
            log.info("early stop at epoch %d (best %d, val R@sum %.1f)", epoch, best.epoch, best.rsum)
            break
    if best.state is None:
        raise ValueError(f"no epoch was trained (epochs={cfg.epochs})")
    video.load_state_dict(best.state[0])
    query.load_state_dict(best.state[1])
    video.eval(), query.eval()
    return TrainResult(video, query, best.epoch, best.val, history)


def save_checkpoint(path: Path, video: VideoTower, query: QueryTower, cfg: TrainConfig, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    torch.save({"video": video.state_dict(), "query": query.state_dict(), "config": cfg.to_dict(), "epoch": row}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> tuple[VideoTower, QueryTower, dict]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model_cfg = ModelConfig(**blob["config"]["model"])
    video, query = VideoTower(model_cfg), QueryTower(model_cfg)
    video.load_state_dict(blob["video"])
    query.load_state_dict(blob["query"])
    return video.eval(), query.eval(), blob


def _step(video: VideoTower, query: QueryTower, cfg: TrainConfig, gen: torch.Generator,
          text: torch.Tensor, vision: torch.Tensor, audio: torch.Tensor, present: torch.Tensor,
          qvec: torch.Tensor, group: torch.Tensor, queue: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    q = query(qvec)
    f_t, f_v, f_a = video.towers(text, vision, audio, present)
    m = video.fuse(f_t, f_v, f_a, present)
    same = group[:, None] == group[None, :]
    scores = q @ m.T
    bias = None
    if cfg.ncl_train:  # NCL at train time: biases from this batch's queries plus a queue of past ones
        bank = torch.cat([q.detach(), queue])
        bias = torch.from_numpy(sinkhorn_biases(bank @ m.detach().T, cfg.tau, iters=50, tol=1e-4).beta)
        queue = torch.cat([q.detach(), queue])[: cfg.ncl_queue]
    loss = negnce(scores, cfg.tau) if cfg.negnce else info_nce_bi(scores, cfg.tau, same, bias)
    s_qv = q @ f_v.T
    loss = loss + cfg.a_vision * info_nce_bi(s_qv, cfg.tau, same, valid=present[:, 1] > 0)
    loss = loss + cfg.b_text * info_nce_bi(q @ f_t.T, cfg.tau, same, valid=present[:, 0] > 0)
    if cfg.c_audio:
        loss = loss + cfg.c_audio * info_nce_bi(q @ f_a.T, cfg.tau, same, valid=present[:, 2] > 0)
    if cfg.g_shuffle:
        idx = shuffle_indices(len(q), cfg.shuffles, gen)  # (n, k): vision/audio of j, text of i
        k = idx.shape[1]
        pres = torch.cat([present[:, None, 0:1].expand(-1, k, 1), present[idx][..., 1:]], dim=-1)
        m_sh = video.fuse(f_t[:, None].expand(-1, k, -1).reshape(-1, f_t.shape[1]),
                          f_v[idx].reshape(-1, f_v.shape[1]), f_a[idx].reshape(-1, f_a.shape[1]),
                          pres.reshape(-1, 3), gate_grad=cfg.shuffle_gate_grad).view(len(q), k, -1)
        s_shuf = (q[:, None, :] * m_sh).sum(-1)
        s_shuf = s_shuf.masked_fill(same.gather(1, idx), NEG)  # same caption: not a negative
        if cfg.margin in ("dynamic", "signed"):
            delta = dynamic_margin(s_qv, cfg.margin_scale, signed=cfg.margin == "signed")
        elif cfg.margin == "fixed":
            delta = torch.full((len(q),), cfg.fixed_margin)
        else:
            delta = torch.zeros(len(q))
        loss = loss + cfg.g_shuffle * shuffled_negatives_loss(scores.diagonal(), s_shuf, delta, cfg.tau)
    return loss, queue
