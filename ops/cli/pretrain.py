"""`vidsearch pretrain`: the visual bridge head from a `dataset pretrain` corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidsearch.core.errors import VidsearchError
from vidsearch.ops.cli.context import console, fail, print_json, progress, state


def pretrain(
    ctx: typer.Context,
    corpus: Annotated[Path, typer.Option("--corpus", help="Corpus folder from `vidsearch dataset pretrain`.")],
    out: Annotated[Path, typer.Option("--out", help="Head file to write (.npz, no pickle).")],
    seed: Annotated[int, typer.Option(help="Seed of init, batches and dropout.")] = 0,
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stop on the corpus's validation groups).")] = 40,
    hidden: Annotated[int, typer.Option(help="Hidden width of the head.")] = 1024,
    hard_negatives: Annotated[bool, typer.Option(help="Batches built around text-space neighbours.")] = True,
    augment: Annotated[bool, typer.Option(help="Train on every render of an image (else the first only).")] = True,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Train the head from frozen backbone features to the text encoder's space (bidirectional
    InfoNCE, co-relevant pictures masked, optional text-space hard negatives)."""
    import json as jsonlib

    from vidsearch.encoders.text import load_text_encoder
    from vidsearch.encoders.vision import EfficientNetEncoder
    from vidsearch.encoders.visual_bridge.train import PretrainConfig, load_corpus, train

    cfg_enc = state(ctx).settings.encoders
    try:
        text = load_text_encoder(cfg_enc.text_model, cfg_enc.threads, cfg_enc.batch_size)
        vision = EfficientNetEncoder(cfg_enc.threads, cfg_enc.batch_size, cfg_enc.vision_model)
        data = load_corpus(corpus, vision, text, progress("corpus features"))
        manifest = jsonlib.loads((corpus / "manifest.json").read_text())
        card = {"backbone": vision.version, "text": text.version, "corpus_hash": manifest["corpus_hash"],
                "corpus_sources": {k: {x: v[x] for x in ("package", "version", "licence") if x in v} for k, v in manifest["sources"].items()}}
        cfg = PretrainConfig(hidden=hidden, epochs=epochs, hard_negatives=hard_negatives, augment=augment, seed=seed)
        head, report = train(data, cfg, card, progress("training"))
        head.save(out)
    except (VidsearchError, ValueError, FileNotFoundError) as exc:
        raise fail(exc) from exc
    summary = {"out": str(out), "version": head.version, **report}
    print_json(summary) if json else console.print({k: v for k, v in summary.items() if k != "history"})
