"""`vidsearch workers start | ping`: run and check Celery workers."""

from __future__ import annotations

from typing import Annotated

import typer

from vidsearch.ops.cli.context import console, print_json

app = typer.Typer(help="Run and check the Celery workers (Redis broker, JSON serializer).")


@app.command()
def start(
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    queues: Annotated[str, typer.Option(help="Comma-separated queues to consume.")] = "vidsearch",
) -> None:
    """Run a Celery worker in the foreground (SIGTERM: finish current tasks, then exit)."""
    from vidsearch.ops.celery_app import app as celery

    celery.worker_main(["worker", f"--concurrency={concurrency}", f"--queues={queues}", "--loglevel=INFO"])


@app.command()
def ping(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a worker.")] = 10.0,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Send the health task through the broker and wait for a worker's answer."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    from vidsearch.ops.tasks.health import ping as ping_task

    try:
        result = ping_task.delay({"from": "cli"}).get(timeout=timeout)
    except CeleryTimeout as exc:
        console.print(f"[red]no worker answered within {timeout}s[/red]")
        raise typer.Exit(1) from exc
    if json:
        print_json(result)
    else:
        console.print(f"worker {result['host']} pid {result['pid']} (vidsearch {result['vidsearch']}) answered")
