"""`vidsearch train`, `vidsearch eval` and `vidsearch ablation`: the balanced model from the CLI."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from vidsearch.core.errors import ConfigError, VidsearchError
from vidsearch.ops.cli.context import console, fail, print_json, progress, state


def train(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (videos.jsonl, queries.jsonl).")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    seed: Annotated[int, typer.Option(help="Random seed (data order, init, shuffles).")] = 0,
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stopping on validation R@sum).")] = 80,
    ablation: Annotated[bool, typer.Option(help="Also train the fusion_plain ablation.")] = True,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Train the modality-balanced model on a dataset's train split; export ONNX; write the model card."""
    from vidsearch.ops.datasets.features import dataset_features
    from vidsearch.ops.datasets.format import load_dataset
    from vidsearch.ops.modeling.training import train_model

    settings = state(ctx).settings
    try:
        ds = load_dataset(data)
        feats = dataset_features(ds, settings, [v for v in ds.videos if v.split in ("train", "val")],
                                 progress=progress("features"))
        variants = ("balanced", "fusion_plain") if ablation else ("balanced",)
        with Progress(console=console, transient=True) as bar:
            tasks = {v: bar.add_task(f"training {v}", total=epochs) for v in variants}

            def on_epoch(variant: str, row: dict) -> None:
                bar.update(tasks[variant], advance=1,
                           description=f"training {variant} loss {row['loss']:.3f} val R@sum {row['val_rsum']:.1f}")

            cards = train_model(ds, feats, settings, out, seed, variants, on_epoch, {"epochs": epochs})
    except (VidsearchError, ValueError) as exc:
        raise fail(exc) from exc
    summary = {v: {"version": c["version"], "best_epoch": c["best_epoch"], "val": c["metrics"]["val"]["all"],
                   "ncl_tau": c["ncl"]["tau"]} for v, c in cards.items()}
    print_json({"out": str(out), "models": summary}) if json else console.print(summary)


def evaluate(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="Dataset folder.")],
    model: Annotated[Path | None, typer.Option("--model", help="Model folder from `vidsearch train`.")] = None,
    split: Annotated[str, typer.Option(help="Split to evaluate (a folder without splits is all test).")] = "test",
    retrieval: Annotated[str | None, typer.Option(help="Also the retrieval rows (bm25, dense, rrf, convex, dynamic_margin) "
                                                       "over this store: milvus-lite (embedded), milvus or opensearch.")] = None,
    moments: Annotated[bool, typer.Option("--moments", help="Moment retrieval instead (a `dataset moments` folder): video "
                                                            "R@1/R@10, R1@IoU0.5/0.7, mIoU, IoU>=0.5 when found, through "
                                                            "the real writer and retriever on an embedded milvus-lite file.")] = False,
    copies: Annotated[bool, typer.Option("--copies", help="Same-source search instead (a `dataset copies` folder): segment "
                                                          "precision/recall/F1, video mAP, false matches on negatives and "
                                                          "vectors per video-hour, TN and DP, scene keyframes vs uniform 1 fps.")] = False,
    crosslingual: Annotated[bool, typer.Option("--crosslingual", help="Queries in other languages (a `dataset tuxpaint` folder): "
                                                                      "R@1/R@10 per language against English on the same queries, "
                                                                      "with the configured text model (set encoders.text_model = e5).")] = False,
    languages: Annotated[str, typer.Option(help="With --crosslingual: comma-separated Tux Paint language codes.")] = "de,fr,es,ja,zh_CN",
    bridge_head: Annotated[Path | None, typer.Option("--bridge-head", help="Also the bridge_pretrained and bridge_joined rows: "
                                                                          "the visual route alone through this head (from `vidsearch "
                                                                          "pretrain`), and mixed with the label bridge.")] = None,
    also_model: Annotated[list[Path] | None, typer.Option("--also-model", help="Another model folder (repeatable): its rows "
                                                                              "as balanced@<folder>, each model on the bridge "
                                                                              "it was trained on.")] = None,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """R@1/5/10, median rank and R@sum per config and subset, and the R_vt diagnostic; with
    --moments, whether the top hit is the right video and its moment the right seconds; with
    --crosslingual, how much of English R@10 each language keeps."""
    if crosslingual:
        _crosslingual(ctx, data, split, languages, json)
        return
    if copies:
        from vidsearch.ops.cli.copies import copies_eval

        copies_eval(ctx, data, split, json)
        return
    from vidsearch.ops.datasets.features import dataset_features
    from vidsearch.ops.datasets.format import load_dataset
    from vidsearch.ops.modeling.evaluation import evaluate as run_eval

    settings = state(ctx).settings
    try:
        if moments and retrieval not in (None, "milvus-lite"):
            raise ConfigError("--moments runs on an embedded milvus-lite file; leave out --retrieval")
        ds = load_dataset(data)
        feats = dataset_features(ds, settings, [v for v in ds.videos if v.split == split], progress=progress("features"))
        if moments:
            from vidsearch.ops.modeling.moments_eval import evaluate_moments

            report = evaluate_moments(ds, feats, settings, split, model)
        else:
            report = run_eval(ds, feats, settings, model, split, retrieval, bridge_head, also_model or ())
    except (VidsearchError, ValueError, FileNotFoundError) as exc:
        raise fail(exc) from exc
    if json:
        print_json(report)
        return
    from rich.table import Table

    if moments:
        from rich.markup import escape

        table = Table(title=escape(f"{data} [{split}] {report['videos']} videos, {report['queries']} moment queries, "
                                   f"fusion {report['fusion']}"))
        columns = {"R@1": "r1", "R@10": "r10", "R1@IoU0.5": "r1_iou50", "R1@IoU0.7": "r1_iou70", "mIoU": "miou",
                   "IoU≥0.5 found": "iou50_when_found", "IoU≥0.5 right video": "gt_video_iou50",
                   "same, keyframe windows": "legacy_gt_video_iou50"}
        for col in columns:
            table.add_column(col)
        table.add_row(*(f"{report['metrics'][key]:.1f}" for key in columns.values()))
        console.print(table)
        return

    table = Table(title=f"{data} [{split}] {report['videos']} videos, {report['queries']} queries")
    for col in ("config", "subset", "R@1", "R@5", "R@10", "MdR", "R@sum", "R_vt"):
        table.add_column(col)
    for name, per in report["metrics"].items():
        for subset, m in per.items():
            ratio = report["r_vt"][name]
            table.add_row(name, subset, *(f"{m[k]:.1f}" for k in ("r1", "r5", "r10", "mdr", "rsum")), "-" if ratio is None else f"{ratio:.3f}")
    console.print(table)
    for name, why in report.get("unavailable", {}).items():
        console.print(f"[yellow]{name}[/yellow]: unavailable: {why}")


def _crosslingual(ctx: typer.Context, data: Path, split: str, languages: str, json: bool) -> None:
    from vidsearch.ops.datasets.features import dataset_features
    from vidsearch.ops.datasets.format import load_dataset
    from vidsearch.ops.modeling.crosslingual import evaluate_crosslingual

    langs = [lang.strip() for lang in languages.split(",") if lang.strip()]
    if not langs:
        raise typer.BadParameter("name at least one language", param_hint="--languages")
    settings = state(ctx).settings
    try:
        ds = load_dataset(data)
        feats = dataset_features(ds, settings, [v for v in ds.videos if v.split == split], progress=progress("features"))
        report = evaluate_crosslingual(ds, feats, settings, split, langs)
    except (VidsearchError, ValueError, FileNotFoundError) as exc:
        raise fail(exc) from exc
    if json:
        print_json(report)
        return
    from rich.table import Table

    table = Table(title=f"{data} [{split}] cross-lingual, text model {report['text_model']}")
    for col in ("language", "queries", "route", "subset", "R@1", "R@10", "English R@1", "English R@10"):
        table.add_column(col)
    for lang, row in report["languages"].items():
        for route in ("naive_fusion", "text_only"):
            for subset, m in row.get(route, {}).items():
                if isinstance(m, dict):
                    table.add_row(lang, f"{row['queries']}/{row['of']}", route, subset,
                                  *(f"{m[k]:.1f}" for k in ("r1", "r10", "english_r1", "english_r10")))
    console.print(table)


def ablation(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="Dataset folder.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for one model per seed (seed-N/).")],
    seeds: Annotated[int, typer.Option(help="Number of seeds (0..N-1).")] = 3,
    retrieval: Annotated[str | None, typer.Option(help="Also the retrieval rows over this store (milvus-lite, milvus, opensearch).")] = None,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Train and evaluate per seed; print mean and spread (std) of every metric."""
    from vidsearch.ops.datasets.features import dataset_features
    from vidsearch.ops.datasets.format import load_dataset
    from vidsearch.ops.modeling.ablation import aggregate
    from vidsearch.ops.modeling.evaluation import evaluate as run_eval
    from vidsearch.ops.modeling.fusion_training import train_fusion
    from vidsearch.ops.modeling.training import train_model

    settings = state(ctx).settings
    try:
        ds = load_dataset(data)
        feats = dataset_features(ds, settings, progress=progress("features"))
        reports = []
        for seed in range(seeds):
            model_dir = out / f"seed-{seed}"
            train_model(ds, feats, settings, model_dir, seed)
            if retrieval:  # the dynamic_margin row's gate learns this seed's dense scores (train; val picks)
                train_fusion(ds, feats, settings, model_dir, store=retrieval)
            report = run_eval(ds, feats, settings, model_dir, "test", retrieval)
            (model_dir / "eval.json").write_text(jsonlib.dumps(report, indent=2))
            reports.append(report)
            console.print(f"seed {seed}: balanced test R@sum {report['metrics']['balanced']['all']['rsum']:.1f}")
    except (VidsearchError, ValueError) as exc:
        raise fail(exc) from exc
    table = aggregate(reports)
    (out / "ablation.json").write_text(jsonlib.dumps(table, indent=2))
    if json:
        print_json(table)
    else:
        for name, per in table["metrics"].items():
            console.print(name, {s: f"R@sum {m['rsum']['mean']:.1f}±{m['rsum']['std']:.1f}" for s, m in per.items()})


def prior_weight(
    ctx: typer.Context,
    model: Annotated[Path, typer.Option("--model", help="Model folder from `vidsearch train`.")],
    data: Annotated[Path, typer.Option("--data", help="The dataset the model was trained on (its val split is read).")],
    ood_data: Annotated[Path, typer.Option("--ood-data", help="An out-of-domain dataset (e.g. `vidsearch dataset emoji`); "
                                                              "its val split is read.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the derived model at the chosen weight.")],
    weights: Annotated[str, typer.Option(help="Comma-separated candidate weights in [0, 1].")] = "0,0.25,0.5,0.75",
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Pull a trained model back toward the default fusion by the weight chosen on both validation
    splits (the smallest at which it is no worse than naive fusion on any subset of either), and
    write it as a new model version."""
    from vidsearch.encoders.balanced.serve import BalancedModel
    from vidsearch.encoders.text import load_text_encoder
    from vidsearch.ops.datasets.features import dataset_features
    from vidsearch.ops.datasets.format import load_dataset
    from vidsearch.ops.modeling.prior_weight import choose, derive, train_queries
    from vidsearch.ops.modeling.training import bridge_settings

    try:
        candidates = [float(w) for w in weights.split(",") if w.strip()]
        if not candidates or any(not 0.0 <= w <= 1.0 for w in candidates):
            raise ConfigError(f"--weights must be comma-separated numbers within [0, 1], got {weights!r}")
        trained = BalancedModel.load(model)
        settings = bridge_settings(state(ctx).settings, model, trained.card)
        text = load_text_encoder(settings.encoders.text_model, settings.encoders.threads, settings.encoders.batch_size)
        own, other = load_dataset(data), load_dataset(ood_data)
        own_feats = dataset_features(own, settings, [v for v in own.videos if v.split in ("train", "val")],
                                     progress=progress("features"))
        other_feats = dataset_features(other, settings, [v for v in other.videos if v.split == "val"],
                                       progress=progress("features (out of domain)"))

        def show(row: dict) -> None:
            if not json:
                console.print(f"weight {row['weight']:.2f}: in domain {row['in_domain']}, out of domain {row['ood']}")

        queries = train_queries(own, own_feats, text)
        report = choose(model, settings, queries, candidates, (own, own_feats), (other, other_feats), show)
        report["versions"] = derive(model, report["chosen"], out, queries)
        report["out"] = str(out)
    except (VidsearchError, ValueError, FileNotFoundError, FileExistsError) as exc:
        raise fail(exc) from exc
    print_json(report) if json else console.print({k: report[k] for k in ("chosen", "versions", "out")})
