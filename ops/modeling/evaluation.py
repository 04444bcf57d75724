"""`vidsearch eval`: retrieval metrics per config and subset, plus the modality-reliance diagnostic.

Configs (the balanced-model ablation): text_only (title + description + ASR + OCR text vectors), naive_fusion (the
documented default: mean of modality vectors), bridge_imagenet, bridge_pretrained and bridge_joined
(the visual route alone, through the ImageNet label bridge, the trained bridge head or their mix),
fusion_plain (trained without shuffle or margin),
balanced (shuffle + dynamic margin), balanced_ncl (balanced, ranked with NCL biases from the
training-query bank).

R_vt = mean cos(F_v, m) / mean cos(F_t, m) over videos that have both vision and text: how much
the fused vector leans on what the video shows versus its text. A ratio of means, not a mean of
ratios, because cos(F_t, m) can be near zero for a single video.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.encoders.balanced.inputs import video_arrays
from vidsearch.encoders.balanced.metrics import subset_metrics
from vidsearch.encoders.balanced.ncl import ncl_scores
from vidsearch.encoders.balanced.serve import BalancedModel
from vidsearch.encoders.balanced.train import Split
from vidsearch.encoders.bridges import Bridge, JoinedBridge, load_bridge
from vidsearch.encoders.extract import in_text_space
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.fusion.default import fuse, modality_vectors
from vidsearch.encoders.text import TextEncoder, load_text_encoder, normalize_rows
from vidsearch.encoders.vision import TextBridge
from vidsearch.encoders.visual_bridge.head import BridgeHead, PretrainedBridge
from vidsearch.ops.datasets.format import Dataset
from vidsearch.ops.modeling.splits import make_split
from vidsearch.ops.modeling.training import bridge_settings, variant_dir

log = logging.getLogger(__name__)
MODEL_CONFIGS = ("text_only", "naive_fusion", "bridge_imagenet", "bridge_pretrained", "bridge_joined", "fusion_plain", "balanced", "balanced_ncl")


@dataclass
class Embedded:
    """What one config produces: scores (queries x videos) and the towers for R_vt."""

    scores: np.ndarray
    fused: np.ndarray
    f_text: np.ndarray
    f_vision: np.ndarray


def r_vt(e: Embedded) -> float | None:
    if len(e.fused) != len(e.f_vision) or len(e.fused) == 0 or e.fused.shape[1] != e.f_vision.shape[1]:
        return None  # a ranking without vectors (retrieval rows)
    both = (np.linalg.norm(e.f_text, axis=1) > 0) & (np.linalg.norm(e.f_vision, axis=1) > 0)
    if not both.any():
        return None
    cv = float(np.mean((e.f_vision[both] * e.fused[both]).sum(1)))
    ct = float(np.mean((e.f_text[both] * e.fused[both]).sum(1)))
    return round(cv / ct, 4) if abs(ct) > 1e-9 else None


def _text_only(split: Split, feats: list[VideoFeatures]) -> Embedded:
    parts = split.arrays.text.reshape(len(feats), 3, -1)
    present = (np.abs(parts).sum(-1) > 0)[..., None]
    v = normalize_rows((parts * present).sum(1))
    visual = normalize_rows(np.stack([modality_vectors(f)["visual"] for f in feats]))
    return Embedded(split.query_vecs @ v.T, v, v, visual)


def _naive(split: Split, feats: list[VideoFeatures]) -> Embedded:
    mv = [modality_vectors(f) for f in feats]
    v = np.stack([fuse(x) for x in mv])
    return Embedded(split.query_vecs @ v.T, v, np.stack([x["text"] for x in mv]), np.stack([x["visual"] for x in mv]))


def visual_route(bridge: Bridge, feats: list[VideoFeatures]) -> np.ndarray:
    """(videos, d) unit vectors: each keyframe bridged from what its record stores (top classes,
    pooled features), averaged per video. No media is decoded, so every bridge kind is compared on
    the same keyframes whichever bridge the records were extracted with."""
    rows = []
    for f in feats:
        frames = bridge.from_record(f)  # (0, d) for a video without keyframes
        rows.append(frames.mean(axis=0) if len(frames) else np.zeros(frames.shape[1], np.float32))
    return normalize_rows(np.stack(rows))


def _bridge_only(bridge: Bridge) -> Callable[[Split, list[VideoFeatures]], Embedded]:
    """bridge_*: the visual route alone through one bridge kind."""

    def run(split: Split, feats: list[VideoFeatures]) -> Embedded:
        v = visual_route(bridge, feats)
        return Embedded(split.query_vecs @ v.T, v, np.zeros_like(v), v)

    return run


def _model(model: BalancedModel, split: Split, ncl: bool = False) -> Embedded:
    out = model.embed_arrays(split.arrays)
    q = model.embed_query_vectors(split.query_vecs)
    if ncl:
        if model.ncl_bank is None:
            raise FileNotFoundError(f"{model.root}: no ncl_bank.npy")
        scores = ncl_scores(q, out["fused"], model.ncl_bank, model.ncl_tau)
    else:
        scores = q @ out["fused"].T
    return Embedded(scores, out["fused"], out["text"], out["vision"])


ConfigFn = Callable[[Split, list[VideoFeatures]], Embedded]


def on_own_bridge(model: BalancedModel, settings: Settings, text: TextEncoder, fn: Callable[[Split], Embedded],
                  memo: dict[str, Split]) -> ConfigFn:
    """Run a trained model on the bridge its card names: records extracted with another bridge are
    bridged again from what they store (no media), so towers trained on the joined bridge are not
    scored on label-bridge inputs or the other way round. `memo` shares the work between the
    variants of one bridge."""

    def run(split: Split, feats: list[VideoFeatures]) -> Embedded:
        bridge = load_bridge(bridge_settings(settings, model.root, model.card), text,
                             feats[0].encoder_versions.get("vision", "") if feats else "")
        if all(f.encoder_versions.get("bridge") == bridge.version for f in feats):
            return fn(split)
        if bridge.version not in memo:
            memo[bridge.version] = replace(split, arrays=video_arrays([in_text_space(f, text, bridge) for f in feats]))
        return fn(memo[bridge.version])

    return run


def model_configs(model_dir: Path | None, settings: Settings | None = None, text: TextEncoder | None = None,
                  suffix: str = "") -> dict[str, ConfigFn]:
    """The rows of one model folder (balanced, balanced_ncl and its fusion_plain ablation), each
    on the bridge its card names when `settings` and `text` are given."""
    configs: dict[str, ConfigFn] = {} if suffix else {"text_only": _text_only, "naive_fusion": _naive}
    if model_dir is None:
        return configs
    memo: dict[str, Split] = {}

    def row(model: BalancedModel, ncl: bool = False) -> ConfigFn:
        def fn(s: Split) -> Embedded:
            return _model(model, s, ncl)

        if settings is None or text is None:
            return lambda s, f: fn(s)
        return on_own_bridge(model, settings, text, fn, memo)

    plain_dir = variant_dir(model_dir, "fusion_plain")
    if (plain_dir / "video_tower.onnx").exists():
        configs["fusion_plain" + suffix] = row(BalancedModel.load(plain_dir))
    else:
        log.warning("%s: no fusion_plain ablation; that row is left out", model_dir)
    balanced = BalancedModel.load(model_dir)
    configs["balanced" + suffix] = row(balanced)
    configs["balanced_ncl" + suffix] = row(balanced, ncl=True)
    return configs


def bridge_rows(settings: Settings, text: TextEncoder, feats: list[VideoFeatures], head: BridgeHead | None) -> dict[str, Bridge]:
    """bridge_imagenet always; with a head, bridge_pretrained and bridge_joined (at the weight in
    the head's card, the one chosen on validation)."""
    labels = TextBridge(text, settings.encoders.bridge_top_k, settings.stack.cache_dir / "bridge")
    rows: dict[str, Bridge] = {"bridge_imagenet": labels}
    if head is None:
        return rows
    for backbone in {f.encoder_versions.get("vision", "") for f in feats}:
        head.check_fits(backbone, text.version)
    pretrained = PretrainedBridge(head, text.version)
    rows.update({"bridge_pretrained": pretrained, "bridge_joined": JoinedBridge(pretrained, labels, head.join_weight)})
    return rows


def evaluate(ds: Dataset, features: dict[str, VideoFeatures], settings: Settings, model_dir: Path | None,
             split: str = "test", retrieval_store: str | None = None, bridge_head: Path | None = None,
             more_models: Sequence[Path] = ()) -> dict:
    """`retrieval_store` (milvus-lite, milvus or opensearch) adds the retrieval rows; `bridge_head`
    the bridge_pretrained and bridge_joined rows; `more_models` the rows of other model folders as
    `balanced@<folder name>` (each model on its own bridge), so models trained on different
    bridges are compared in one run on the same held-out videos and queries."""
    text = load_text_encoder(settings.encoders.text_model, settings.encoders.threads, settings.encoders.batch_size)
    sp, ids = make_split(ds, split, features, text)
    feats = [features[i] for i in ids]
    configs = model_configs(model_dir, settings, text)
    for other in more_models:
        configs.update(model_configs(other, settings, text, suffix=f"@{other.name}"))
    head = BridgeHead.load(bridge_head) if bridge_head is not None else None
    configs.update({name: _bridge_only(b) for name, b in bridge_rows(settings, text, feats, head).items()})
    unavailable: dict[str, str] = {}
    if retrieval_store:
        from vidsearch.ops.modeling.retrieval_eval import retrieval_configs

        _, queries = ds.split(split)
        kept = [q for q in queries if any(r in set(ids) for r in q.relevant)]
        extra, unavailable = retrieval_configs(settings, model_dir, retrieval_store, [q.text for q in kept])
        configs.update(extra)
    metrics, ratios = {}, {}
    for name, fn in configs.items():
        e = fn(sp, feats)
        metrics[name] = subset_metrics(e.scores, sp.relevant, sp.subsets)
        ratios[name] = r_vt(e)
    return {"split": split, "videos": len(ids), "queries": len(sp.relevant), "metrics": metrics, "r_vt": ratios,
            "unavailable": unavailable}
