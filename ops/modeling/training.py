"""`vidsearch train`: train the balanced model and its ablation, export ONNX, write model cards.

Folder written (MODEL_DIR):
  card.json, video_tower.onnx, query_tower.onnx, ncl_bank.npy, checkpoints/{best,last}.pt
  ablations/fusion_plain/...   the same for the model trained without shuffling or margin
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.encoders.balanced.export import check_parity, export_towers
from vidsearch.encoders.balanced.metrics import subset_metrics
from vidsearch.encoders.balanced.ncl import ncl_scores
from vidsearch.encoders.balanced.train import VARIANTS, Split, TrainConfig, TrainResult, embed, train
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.text import load_text_encoder
from vidsearch.ops.datasets.format import Dataset
from vidsearch.ops.modeling.splits import make_split

log = logging.getLogger(__name__)
NCL_TAUS = (0.02, 0.05, 0.1)
PARITY_MIN = 0.999
MODEL_BRIDGE_HEAD = "bridge_head.npz"


def variant_dir(out: Path, variant: str) -> Path:
    return out if variant == "balanced" else out / "ablations" / variant


def choose_ncl_tau(result: TrainResult, train_split: Split, val_split: Split) -> tuple[float, np.ndarray, dict]:
    """Bank = the training queries through the query tower; tau picked on validation R@1."""
    _, bank = embed(result.video, result.query, train_split)
    m, q = embed(result.video, result.query, val_split)
    trials = {tau: subset_metrics(ncl_scores(q, m, bank, tau), val_split.relevant, val_split.subsets)["all"]["r1"]
              for tau in NCL_TAUS}
    best = max(trials, key=lambda t: trials[t])
    return best, bank, {str(k): v for k, v in trials.items()}


def keep_bridge(settings: Settings, features: dict[str, VideoFeatures], dest: Path) -> dict[str, Any]:
    """The bridge the towers were trained on, for the card; a trained head is copied into the
    model folder, so the model is evaluated (and served) on the inputs it learned from."""
    cfg = settings.encoders
    entry: dict[str, Any] = {"kind": cfg.bridge, "version": _encoder_versions(features).get("bridge", "")}
    if cfg.bridge == "imagenet":
        return entry
    from vidsearch.encoders.bridges import SHIPPED_HEAD
    from vidsearch.encoders.visual_bridge.head import BridgeHead

    head = BridgeHead.load(cfg.bridge_head or SHIPPED_HEAD)
    head.save(dest / MODEL_BRIDGE_HEAD)
    entry["head"] = MODEL_BRIDGE_HEAD
    if cfg.bridge == "joined":
        entry["join_weight"] = head.join_weight if cfg.bridge_join_weight is None else cfg.bridge_join_weight
    return entry


def bridge_settings(settings: Settings, model_root: Path, card: dict[str, Any]) -> Settings:
    """`settings` with the bridge a model's card names (models without the entry: the label bridge)."""
    entry = card.get("bridge", {"kind": "imagenet"})
    update: dict[str, Any] = {"bridge": entry["kind"]}
    if "head" in entry:
        update["bridge_head"] = model_root / entry["head"]
    if "join_weight" in entry:
        update["bridge_join_weight"] = entry["join_weight"]
    return settings.model_copy(update={"encoders": settings.encoders.model_copy(update=update)})


def _encoder_versions(features: dict[str, VideoFeatures]) -> dict[str, str]:
    return next(iter(features.values())).encoder_versions if features else {}


def train_model(ds: Dataset, features: dict[str, VideoFeatures], settings: Settings, out: Path, seed: int = 0,
                variants: tuple[str, ...] = ("balanced", "fusion_plain"),
                on_epoch: Callable[[str, dict], None] | None = None, overrides: dict[str, Any] | None = None) -> dict[str, dict]:
    text = load_text_encoder(settings.encoders.text_model, settings.encoders.threads, settings.encoders.batch_size)
    train_split, _ = make_split(ds, "train", features, text)
    val_split, _ = make_split(ds, "val", features, text)
    cards = {}
    for variant in variants:
        cfg = TrainConfig(seed=seed, **{**VARIANTS[variant], **(overrides or {})})
        dest = variant_dir(out, variant)
        result = train(train_split, val_split, cfg, on_epoch=partial(on_epoch, variant) if on_epoch else None,
                       checkpoint_dir=dest / "checkpoints")
        export_towers(result.video, result.query, dest)
        parity = check_parity(result.video, result.query, dest, val_split.arrays, val_split.query_vecs)
        if min(parity.values()) < PARITY_MIN:
            raise RuntimeError(f"ONNX export of {variant} is not faithful: {parity}")
        tau, bank, trials = choose_ncl_tau(result, train_split, val_split)
        np.save(dest / "ncl_bank.npy", bank.astype(np.float32))
        digest = hashlib.sha256((dest / "video_tower.onnx").read_bytes() + (dest / "query_tower.onnx").read_bytes())
        card = {
            "version": f"mbvr-{variant}-{digest.hexdigest()[:12]}",
            "variant": variant,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seed": seed,
            "encoder_versions": _encoder_versions(features),
            "text_query_encoder": text.version,
            "data": {"root": str(ds.root), "hash": ds.fingerprint(), "train_videos": len(train_split.arrays),
                     "val_videos": len(val_split.arrays)},
            "train_config": cfg.to_dict(),
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            "metrics": {"val": result.val},
            "onnx_parity_min_cos": parity,
            "ncl": {"tau": tau, "bank_size": int(len(bank)), "val_r1_by_tau": trials},
        }
        card["bridge"] = keep_bridge(settings, features, dest)
        (dest / "card.json").write_text(json.dumps(card, indent=2))
        cards[variant] = card
        log.info("trained %s: best epoch %d, val R@sum %.1f", card["version"], result.best_epoch, result.val["all"]["rsum"])
    return cards
