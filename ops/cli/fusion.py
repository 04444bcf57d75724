"""`vidsearch train-fusion`: the learned gate of the default `dynamic_margin` fusion."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TaskID

from vidsearch.core.errors import VidsearchError
from vidsearch.ops.cli.context import console, fail, print_json, progress, state


def train_fusion(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="Dataset folder with train and val splits.")],
    model: Annotated[Path | None, typer.Option("--model", help="A `vidsearch train` folder: the gate learns to weigh "
                                                               "its dense scores and is saved beside it.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the gate (default: "
                                                           "<model>/adaptive_fusion.json, or ./adaptive_fusion.json).")] = None,
    retrieval: Annotated[str, typer.Option(help="Store to run the routes on: milvus-lite (embedded), milvus or opensearch.")] = "milvus-lite",
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Fit the query-adaptive fusion gate on the train split; temperature and L2 penalty chosen on val."""
    from vidsearch.ops.datasets.features import dataset_features
    from vidsearch.ops.datasets.format import load_dataset
    from vidsearch.ops.modeling.fusion_training import train_fusion as run

    settings = state(ctx).settings
    try:
        ds = load_dataset(data)
        feats = dataset_features(ds, settings, [v for v in ds.videos if v.split in ("train", "val")],
                                 progress=progress("features"))
        with Progress(console=console, transient=True) as bar:
            tasks: dict[str, TaskID] = {}

            def on_query(label: str, i: int, n: int) -> None:
                if label not in tasks:
                    tasks[label] = bar.add_task(label, total=n)
                bar.update(tasks[label], completed=i)

            card = run(ds, feats, settings, model, out, retrieval, progress=on_query)
    except (VidsearchError, ValueError, FileNotFoundError) as exc:
        raise fail(exc) from exc
    summary = {k: card[k] for k in ("path", "version", "chosen", "val_rsum_equal_weights", "train_queries", "val_queries")}
    print_json(summary) if json else console.print(summary)
