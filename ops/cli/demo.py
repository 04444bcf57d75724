"""`vidsearch demo`: the README's first command (embedded defaults, no servers), ending with
what to run next on the catalogue it built."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TaskID

from vidsearch.ops.cli.context import console, print_json, state
from vidsearch.plugins.milvus.client import is_embedded


def demo(
    ctx: typer.Context,
    stamps: Annotated[int, typer.Option(help="How many Tux Paint stamps to render as videos.")] = 24,
    workdir: Annotated[Path | None, typer.Option(help="Where the catalogue and features go (default: cache).")] = None,
    serve: Annotated[bool, typer.Option("--serve", help="Then serve the results page on the demo catalogue.")] = False,
    port: Annotated[int | None, typer.Option(help="With --serve: the port (default: settings.retrieval.api_port).")] = None,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Build a catalogue from real packaged media, index it into milvus-lite, run example queries,
    and write a config file (`<workdir>/vidsearch.toml`) that points search and serve at it."""
    from vidsearch.ops.demo import QUERIES, run
    from vidsearch.plugins.milvus.lite import catalogue_path

    cli = state(ctx)
    settings = cli.settings
    workdir = (workdir or settings.stack.cache_dir / "demo").absolute()
    uri = str(catalogue_path(settings.milvus.uri)) if is_embedded(settings.milvus.uri) else str(workdir / "vidsearch.db")
    settings = settings.model_copy(update={"milvus": settings.milvus.model_copy(update={"uri": uri})})
    tasks: dict[str, TaskID] = {}
    with Progress(console=console, disable=json) as bar:
        def progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done)

        report = run(settings, workdir, stamps, progress)
    if json:
        print_json(report)
    else:
        _print_report(report, settings.retrieval.api_host, port or settings.retrieval.api_port, next(iter(QUERIES)))
    if serve:
        from vidsearch.core.settings import load_settings
        from vidsearch.ops.cli.search import serve as serve_command

        # exactly what `VIDSEARCH_CONFIG=<config> vidsearch serve` would load
        cli.settings = load_settings(report["config"])
        serve_command(ctx, host=None, port=port)


def _print_report(report: dict, host: str, port: int, example: str) -> None:
    from vidsearch.ops.demo import RANK_DEPTH

    console.print(f"indexed {report['indexed']} of {report['videos']} videos into {report['milvus_uri']} in {report['seconds']}s")
    for query, hits in report["queries"].items():
        right = report.get("right_answers", {}).get(query, {})
        if not right.get("right"):
            said = "its right answer is not in this catalogue"
        elif right.get("rank") is None:
            said = f"right answer {', '.join(right['right'])} not in the top {RANK_DEPTH}"
        else:
            said = f"right answer {right['right'][0] if len(right['right']) == 1 else ' or '.join(right['right'])} at rank {right['rank']}"
        console.print(f"[bold]{query!r}[/bold]  ({said})")
        for h in hits:
            console.print(f"   {h['score']:.4f}  {h['title']}  ({h['video_id']})")
    config = shlex.quote(report["config"])
    console.print("\n[bold]Next:[/bold] point vidsearch at the demo catalogue, then search it or serve the results page:")
    console.print(f"  export VIDSEARCH_CONFIG={config}", highlight=False)
    console.print(f"  vidsearch search {shlex.quote(example)}", highlight=False)
    console.print(f"  vidsearch serve            # then open http://{host}:{port}/", highlight=False)
    console.print("  (or in one step: vidsearch demo --serve)", highlight=False)
