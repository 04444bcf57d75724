"""`vidsearch demo`: the README's first command (embedded defaults, no servers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from vidsearch.ops.cli.context import console, print_json, state
from vidsearch.plugins.milvus.client import is_embedded


def demo(
    ctx: typer.Context,
    stamps: Annotated[int, typer.Option(help="How many Tux Paint stamps to render as videos.")] = 24,
    workdir: Annotated[Path | None, typer.Option(help="Where the catalogue and features go (default: cache).")] = None,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Build a catalogue from real packaged media, index it into milvus-lite, run example queries."""
    from vidsearch.ops.demo import run

    settings = state(ctx).settings
    workdir = workdir or settings.stack.cache_dir / "demo"
    if not is_embedded(settings.milvus.uri):
        settings = settings.model_copy(update={"milvus": settings.milvus.model_copy(update={"uri": str(workdir / "vidsearch.db")})})
    tasks: dict[str, int] = {}
    with Progress(console=console, disable=json) as bar:
        def progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done)

        report = run(settings, workdir, stamps, progress)
    if json:
        print_json(report)
        return
    console.print(f"indexed {report['indexed']} of {report['videos']} videos into {report['milvus_uri']} in {report['seconds']}s")
    for query, hits in report["queries"].items():
        console.print(f"[bold]{query!r}[/bold]")
        for h in hits:
            console.print(f"   {h['score']:.4f}  {h['title']}  ({h['video_id']})")
