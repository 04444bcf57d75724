"""`vidsearch copies`: same-source search from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidsearch.core.errors import VidsearchError
from vidsearch.ops.cli.context import console, fail, print_json, spinner, state


def copies(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="A video or image file, or the id of an indexed video.")],
    method: Annotated[str | None, typer.Option(help="Alignment: tn (temporal network) or dp (dynamic programming); default: the copies.method setting.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="At most this many matching videos.")] = 10,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Catalogue videos that share footage with QUERY, best first, with the copied segments
    (query start/end, reference start/end). A still image finds the videos it was taken from."""
    from vidsearch.plugins.copies.service import CopyService, as_json

    if method is not None and method not in ("tn", "dp"):
        console.print(f"[red]unknown --method {method!r}: tn or dp[/red]")
        raise typer.Exit(2)
    path = Path(query)
    try:
        service = CopyService(state(ctx).settings)
        try:
            with spinner("searching for copies", enabled=not json):
                matches = service.by_media(path, method, limit) if path.is_file() else service.by_id(query, method, limit)
        finally:
            service.close()
    except VidsearchError as exc:
        raise fail(exc, 3) from exc
    if json:
        print_json(as_json(matches))
        return
    if not matches:
        console.print("no copies found")
    for m in matches:
        console.print(f"[bold]{m.reference_id}[/bold]  score {m.score:.3f}")
        for s in m.segments:
            console.print(f"   query {s.query_start:7.2f}-{s.query_end:7.2f}s  <->  reference "
                          f"{s.reference_start:7.2f}-{s.reference_end:7.2f}s  ({s.score:.3f})")


def copies_eval(ctx: typer.Context, data: Path, split: str, json: bool) -> None:
    """`vidsearch eval --copies`: see ops/modeling/copies_eval.py."""
    from rich.table import Table

    from vidsearch.ops.cli.context import progress
    from vidsearch.ops.modeling.copies_eval import evaluate_copies

    try:
        report = evaluate_copies(data, state(ctx).settings, split, progress=progress)
    except VidsearchError as exc:
        raise fail(exc) from exc
    if json:
        print_json(report)
        return
    table = Table(title=f"{data} [{split}] {report['references']} references, fingerprint {report['fingerprint']}")
    columns = ("policy", "method", "vectors_per_video_hour", "segment_precision", "segment_recall", "segment_f1",
               "video_map", "false_match_rate", "query_ms_p50")
    for col in columns:
        table.add_column(col)
    for row in report["rows"]:
        table.add_row(*(str(row[c]) for c in columns))
    console.print(table)
    if "storage_saving" in report:
        console.print(f"scene keyframes store {100 * report['storage_saving']:.1f}% fewer vectors than uniform 1 fps")


def train_fingerprint(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Where to write the whitening (.npz); ship it by copying it to "
                                                   "encoders/fingerprint_whitening.npz, or point copies.whitening at it.")],
    dim: Annotated[int, typer.Option(min=16, max=1280, help="Fingerprint dimensions.")] = 256,
    shrink: Annotated[float, typer.Option(min=0.0, max=1.0, help="Shrinkage of the within-pair covariance.")] = 0.1,
    limit: Annotated[int | None, typer.Option(help="Only this many train-split stamps.")] = None,
    seed: int = 0,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Fit the fingerprint whitening on train-split Tux Paint frames and edited copies of them."""
    from vidsearch.ops.cli.context import progress
    from vidsearch.ops.modeling.fingerprint_fit import fit

    try:
        fp, report = fit(state(ctx).settings, dim, shrink, limit, seed, progress=progress("frames"))
    except VidsearchError as exc:
        raise fail(exc) from exc
    fp.save(out)
    result = {"out": str(out), "version": fp.version, "pairs": report.pairs, "stamps": report.stamps, "dim": dim, "shrink": shrink}
    print_json(result) if json else console.print(result)
