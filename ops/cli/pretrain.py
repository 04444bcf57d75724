"""`vidsearch pretrain`: the visual bridge head from a `dataset pretrain` corpus, its ONNX export
(parity checked) and, with `--join-data`, the joined bridge's weight chosen on validation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vidsearch.core.errors import VidsearchError
from vidsearch.ops.cli.context import console, fail, print_json, progress, state

if TYPE_CHECKING:
    import numpy as np

    from vidsearch.core.settings import Settings
    from vidsearch.encoders.text import TextEncoder
    from vidsearch.encoders.visual_bridge.head import BridgeHead
    from vidsearch.encoders.visual_bridge.train import PretrainConfig


def pretrain(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Head file to write (.npz, no pickle); the ONNX graph goes beside it.")],
    corpus: Annotated[Path | None, typer.Option("--corpus", help="Corpus folder from `vidsearch dataset pretrain`.")] = None,
    from_head: Annotated[Path | None, typer.Option("--from-head", help="Skip training: start from this head (to choose "
                                                                       "its join weight or export it again).")] = None,
    join_data: Annotated[Path | None, typer.Option("--join-data", help="A `dataset tuxpaint` folder: choose the joined "
                                                                       "bridge's weight on its validation split and "
                                                                       "write it into the head's card.")] = None,
    in_domain: Annotated[Path | None, typer.Option("--in-domain", help="A `dataset tuxpaint` folder: also train on its "
                                                                       "train-split keyframes with their captions "
                                                                       "(validation and test videos are never read).")] = None,
    exclude_source: Annotated[list[str] | None, typer.Option("--exclude-source", help="Leave this corpus source out "
                                                                                       "(repeatable): a style held out "
                                                                                       "for `dataset emoji`.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of init, batches and dropout.")] = 0,
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stop on the corpus's validation groups).")] = 40,
    hidden: Annotated[int, typer.Option(help="Hidden width of the head.")] = 1024,
    hard_negatives: Annotated[bool, typer.Option(help="Batches built around text-space neighbours.")] = True,
    augment: Annotated[bool, typer.Option(help="Train on every render of an image (else the first only).")] = True,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Train the head from frozen backbone features to the text encoder's space (bidirectional
    InfoNCE, co-relevant pictures masked, optional text-space hard negatives), export it to ONNX
    with parity checked, and optionally choose the joined bridge's weight on validation."""
    from vidsearch.encoders.text import load_text_encoder
    from vidsearch.encoders.visual_bridge.head import BridgeHead, probe
    from vidsearch.encoders.visual_bridge.onnx_head import export_checked
    from vidsearch.encoders.visual_bridge.train import PretrainConfig

    if (corpus is None) == (from_head is None):
        raise typer.BadParameter("give exactly one of --corpus (train) and --from-head", param_hint="--corpus")
    settings = state(ctx).settings
    cfg_enc = settings.encoders
    summary: dict = {"out": str(out)}
    try:
        text = load_text_encoder(cfg_enc.text_model, cfg_enc.threads, cfg_enc.batch_size)
        if corpus is not None:
            cfg = PretrainConfig(hidden=hidden, epochs=epochs, hard_negatives=hard_negatives, augment=augment, seed=seed)
            head, report, parity_inputs = _train(corpus, in_domain, text, settings, cfg, frozenset(exclude_source or ()))
            head = head.half()
            summary.update(report)
        else:
            assert from_head is not None
            head = BridgeHead.load(from_head)
            parity_inputs = probe(head)
        if join_data is not None:
            from vidsearch.ops.datasets.features import dataset_features
            from vidsearch.ops.datasets.format import load_dataset
            from vidsearch.ops.modeling.join_weight import CHOICE_SPLIT, sweep_join_weight

            ds = load_dataset(join_data)
            feats = dataset_features(ds, settings, [v for v in ds.videos if v.split == CHOICE_SPLIT],
                                     progress=progress("features"))
            choice = sweep_join_weight(ds, feats, settings, text, head)
            head = head.with_card(join_weight=choice["join_weight"], join_choice=choice)
            summary["join"] = choice
        head.save(out)
        summary["onnx_parity_min_cos"] = round(export_checked(head, out.with_suffix(".onnx"), parity_inputs), 6)
    except (VidsearchError, ValueError, FileNotFoundError) as exc:
        raise fail(exc) from exc
    summary["version"] = head.version
    print_json(summary) if json else console.print({k: v for k, v in summary.items() if k != "history"})


def _train(corpus: Path, in_domain: Path | None, text: TextEncoder, settings: Settings,
           cfg: PretrainConfig, exclude: frozenset[str] = frozenset()) -> tuple[BridgeHead, dict, np.ndarray]:
    """(head, report, corpus-validation features for the ONNX parity check)."""
    import json as jsonlib

    from vidsearch.encoders.vision import EfficientNetEncoder
    from vidsearch.encoders.visual_bridge.train import load_corpus, train, with_pairs

    cfg_enc = settings.encoders
    vision = EfficientNetEncoder(cfg_enc.threads, cfg_enc.batch_size, cfg_enc.vision_model)
    data = load_corpus(corpus, vision, text, progress("corpus features"), exclude)
    manifest = jsonlib.loads((corpus / "manifest.json").read_text())
    card = {"backbone": vision.version, "text": text.version, "corpus_hash": manifest["corpus_hash"],
            "corpus_sources": {k: {x: v[x] for x in ("package", "version", "licence") if x in v}
                               for k, v in manifest["sources"].items() if k not in exclude}}
    if exclude:
        card["excluded_sources"] = sorted(exclude)
    if in_domain is not None:
        from vidsearch.ops.datasets.features import dataset_features
        from vidsearch.ops.datasets.format import load_dataset
        from vidsearch.ops.modeling.keyframe_pairs import TRAIN, train_keyframe_pairs

        ds = load_dataset(in_domain)
        feats = dataset_features(ds, settings, [v for v in ds.videos if v.split == TRAIN], progress=progress("features"))
        x, texts, groups = train_keyframe_pairs(ds, feats)
        data = with_pairs(data, x, texts, groups, text)
        card["in_domain"] = {"dataset": in_domain.name, "hash": ds.fingerprint(), "split": TRAIN, "keyframes": len(texts)}
    head, report = train(data, cfg, card, progress("training"))
    return head, report, data.features[data.split == "val"][:256]
