"""The balanced model: per-modality towers F_t, F_v, F_a, the fusion head H and the query tower.

Every tower starts as (or near) the documented default fusion: F_t is the mean of the text
vectors, F_v the keyframes' text-bridge vector, each plus a residual MLP whose last layer is zero
at init. Training so starts from a sensible zero-shot model and only learns corrections, which
matters with a few hundred training videos. H is a per-video gate (softmax over the present
modalities), so it can learn that a camera-style title is worth nothing for that video.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidsearch.encoders.balanced.inputs import AUDIO_DIM, BRIDGE_DIM, FRAME_DIM, TEXT_DIM, VISION_DIM

DIM = 384


@dataclass(frozen=True)
class ModelConfig:
    dim: int = DIM
    hidden: int = 512
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


class Residual(nn.Module):
    """out = normalize(base + MLP(x)), the MLP's last layer zero at init."""

    def __init__(self, d_in: int, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        last = nn.Linear(hidden, dim)  # held as a local (not an attribute): state_dict keys stay mlp.*
        self.mlp = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout), last)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        return F.normalize(base + self.mlp(x), dim=-1)


class VideoTower(nn.Module):
    def __init__(self, cfg: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.text = Residual(TEXT_DIM, cfg.dim, cfg.hidden, cfg.dropout)
        self.vision = Residual(VISION_DIM, cfg.dim, cfg.hidden, cfg.dropout)
        self.audio_proj = nn.Linear(AUDIO_DIM, cfg.dim)
        self.audio = Residual(AUDIO_DIM, cfg.dim, cfg.hidden, cfg.dropout)
        gate_out = nn.Linear(128, 3)
        self.gate = nn.Sequential(nn.Linear(3 * cfg.dim + 3, 128), nn.GELU(), gate_out)
        nn.init.zeros_(gate_out.weight)
        nn.init.zeros_(gate_out.bias)

    def towers(self, text: torch.Tensor, vision: torch.Tensor, audio: torch.Tensor,
               present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """F_t, F_v, F_a, each unit length (zero where the modality is absent)."""
        t_parts = text.view(-1, 3, DIM)
        t_mask = (t_parts.abs().sum(-1) > 0).float()
        t_base = (t_parts * t_mask[..., None]).sum(1) / t_mask.sum(1, keepdim=True).clamp(min=1)
        f_t = self.text(text, t_base) * present[:, 0:1]
        f_v = self.vision(vision, vision[:, FRAME_DIM:FRAME_DIM + BRIDGE_DIM]) * present[:, 1:2]
        f_a = self.audio(audio, self.audio_proj(audio)) * present[:, 2:3]
        return f_t, f_v, f_a

    def fuse(self, f_t: torch.Tensor, f_v: torch.Tensor, f_a: torch.Tensor, present: torch.Tensor,
             gate_grad: bool = True) -> torch.Tensor:
        """H: gated sum of the present towers, unit length. `gate_grad=False` keeps a loss from
        moving the gate (the towers still learn from it)."""
        logits = self.gate(torch.cat([f_t, f_v, f_a, present], dim=-1))
        if not gate_grad:
            logits = logits.detach()
        logits = logits.masked_fill(present < 0.5, -1e4)
        w = torch.softmax(logits, dim=-1) * (present.sum(-1, keepdim=True) > 0).float()
        stacked = torch.stack([f_t, f_v, f_a], dim=1)
        return F.normalize((w[..., None] * stacked).sum(1), dim=-1)

    def forward(self, text: torch.Tensor, vision: torch.Tensor, audio: torch.Tensor,
                present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        f_t, f_v, f_a = self.towers(text, vision, audio, present)
        return self.fuse(f_t, f_v, f_a, present), f_t, f_v, f_a


class QueryTower(nn.Module):
    """MiniLM query embedding -> the fused space (identity at init)."""

    def __init__(self, cfg: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.proj = Residual(cfg.dim, cfg.dim, cfg.hidden, cfg.dropout)

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        return self.proj(query, query)
