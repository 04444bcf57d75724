"""`vidsearch stack up | down | status | logs`: the local Kafka/OpenSearch/Redis/Milvus stack."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from vidsearch.ops.cli.context import console, print_json, state
from vidsearch.ops.stack.errors import StackError
from vidsearch.ops.stack.manager import Stack

app = typer.Typer(help="Start, stop and inspect the local stack on 127.0.0.1 (Kafka, OpenSearch, Redis, Milvus).")

Only = Annotated[
    list[str] | None,
    typer.Option("--service", "-s", help="Limit to this service (repeatable): kafka, opensearch, redis, milvus."),
]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def _stack(ctx: typer.Context, only: list[str] | None) -> Stack:
    try:
        return Stack(state(ctx).settings, only)
    except StackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def up(ctx: typer.Context, service: Only = None, json: Json = False) -> None:
    """Install (cached) and start the services, waiting on real health checks. Idempotent."""
    stack = _stack(ctx, service)
    t0 = time.monotonic()
    try:
        results = stack.up(on_event=lambda s, m: console.print(f"[cyan]{s:>10}[/cyan] {m}"))
    except StackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    rss_mb = round(stack.rss_bytes() / 2**20, 1)
    report = {
        "services": {
            r.service: {"start_s": round(r.seconds, 2), "already_running": r.already_running, **r.health.as_dict()}
            for r in results
        },
        "total_s": round(time.monotonic() - t0, 2),
        "rss_mb": rss_mb,
    }
    if json:
        print_json(report)
        return
    for r in results:
        note = "already running" if r.already_running else f"started in {r.seconds:.1f}s"
        console.print(f"[green]{r.service:>10}[/green] {r.health.version or '?':<14} {note}")
    console.print(f"stack up in {report['total_s']:.1f}s, resident memory {rss_mb:.0f} MB")


@app.command()
def down(ctx: typer.Context, service: Only = None, json: Json = False) -> None:
    """Stop the services this stack started (whole process groups); no process is left behind."""
    stopped = _stack(ctx, service).down()
    if json:
        print_json({"stopped": stopped})
        return
    for name, was_running in stopped.items():
        console.print(f"{name:>10} {'stopped' if was_running else 'was not running'}")


@app.command()
def status(ctx: typer.Context, service: Only = None, json: Json = False) -> None:
    """Each service's health, version (and OpenSearch plugins). Exit code 1 if any is unhealthy."""
    report = _stack(ctx, service).status()
    if json:
        print_json(report)
    else:
        table = Table("service", "healthy", "version", "pid", "rss MB", "detail")
        for name, s in report["services"].items():
            detail = s.get("error") or ", ".join(s.get("plugins", [])) or s.get("mode", "")
            table.add_row(name, "yes" if s["healthy"] else "[red]no[/red]", str(s["version"]), str(s["pid"]), str(s["rss_mb"]), detail)
        console.print(table)
    if not report["healthy"]:
        raise typer.Exit(1)


@app.command()
def logs(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="kafka, opensearch, redis or milvus")],
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many trailing lines.")] = 60,
) -> None:
    """Print the tail of a service's log."""
    try:
        typer.echo(_stack(ctx, None).logs(name, lines))
    except StackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
