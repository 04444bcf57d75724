"""`vidsearch models list|register|promote|rollback` and `vidsearch reembed start|status`."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from vidsearch.core.errors import VidsearchError
from vidsearch.ops.cli.context import console, fail, print_json, state

models_app = typer.Typer(help="The model registry (Redis): versions, promotion, rollback.", no_args_is_help=True)
reembed_app = typer.Typer(help="Re-embed the catalogue into a new model version (Celery workers).", no_args_is_help=True)


@models_app.command("list")
def list_models(ctx: typer.Context, json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Registered versions, which one is current and which a rollback returns to."""
    from vidsearch.ops.registry.registry import ModelRegistry

    reg = ModelRegistry(state(ctx).settings)
    current, models = reg.current(), [asdict(e) for e in reg.list()]
    out = {"current": current, "previous": reg.previous(), "writing": reg.write_versions(), "models": models}
    if json:
        print_json(out)
        return
    for e in models:
        mark = "*" if e["id"] == current else " "
        console.print(f"{mark} {e['id']}  {e['kind']}  {e['path'] or ''}")


@models_app.command("register")
def register(ctx: typer.Context, model_dir: Annotated[Path, typer.Argument(help="A `vidsearch train` folder.")],
             json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Add a trained model (its card.json gives the version id, metrics and encoder versions)."""
    from vidsearch.ops.registry.registry import ModelRegistry

    try:
        entry = ModelRegistry(state(ctx).settings).register(model_dir)
    except VidsearchError as exc:
        raise fail(exc) from exc
    print_json(asdict(entry)) if json else console.print(f"registered {entry.id}")


def _start(ctx: typer.Context, version: str, wait: bool, json: bool) -> None:
    from vidsearch.ops.reembed.job import start

    settings = state(ctx).settings
    try:
        job = start(settings, version)
    except VidsearchError as exc:
        raise fail(exc) from exc
    if wait:
        _follow(ctx, job.id, json)
    else:
        print_json(asdict(job)) if json else console.print(f"job {job.id}: {job.source} -> {job.target}, {job.total} videos")


def _follow(ctx: typer.Context, job_id: str, json: bool) -> None:
    from vidsearch.ops.reembed.state import JobStore
    from vidsearch.ops.registry.registry import ModelRegistry

    jobs = JobStore(ModelRegistry(state(ctx).settings))
    with Progress(TextColumn("[cyan]re-embedding"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), console=console, disable=json) as bar:
        task = None
        while True:
            st = jobs.status(job_id) or {}
            if task is None:
                task = bar.add_task("reembed", total=st.get("total", 0))
            bar.update(task, completed=st.get("done", 0))
            if st.get("state") in ("swapped", "failed"):
                break
            time.sleep(0.5)
    print_json(st) if json else console.print(f"job {job_id}: {st['state']}: {st['reason']}")
    if st["state"] == "failed":
        raise typer.Exit(1)


@models_app.command("promote")
def promote(ctx: typer.Context, version: Annotated[str, typer.Argument(help="Registered version id.")],
            wait: Annotated[bool, typer.Option(help="Follow the job until it swaps or fails.")] = False,
            json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Re-embed the catalogue into VERSION and, if it passes the validation gate, swap the aliases."""
    _start(ctx, version, wait, json)


@models_app.command("rollback")
def rollback(ctx: typer.Context, json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Point both aliases back at the previous version (kept complete during retention)."""
    from vidsearch.ops.reembed.job import rollback as do_rollback

    try:
        out = do_rollback(state(ctx).settings)
    except VidsearchError as exc:
        raise fail(exc) from exc
    print_json(out) if json else console.print(f"current is {out['current']} again (was {out['previous']})")


@reembed_app.command("start")
def reembed_start(ctx: typer.Context, version: Annotated[str, typer.Argument(help="Registered version id.")],
                  wait: Annotated[bool, typer.Option(help="Follow the job.")] = False,
                  json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Same as `models promote`."""
    _start(ctx, version, wait, json)


@reembed_app.command("status")
def reembed_status(ctx: typer.Context, job: Annotated[str | None, typer.Argument(help="Job id (default: latest).")] = None,
                   json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """done/total, rate, ETA and state of a job."""
    from vidsearch.ops.reembed.state import JobStore
    from vidsearch.ops.registry.registry import ModelRegistry

    st = JobStore(ModelRegistry(state(ctx).settings)).status(job)
    if st is None:
        console.print("no re-embedding job")
        raise typer.Exit(1)
    if json:
        print_json(st)
    else:
        console.print(f"{st['id']} {st['source']} -> {st['target']}: {st['state']} {st['done']}/{st['total']} "
                      f"{st['rate_vps']} videos/s, ETA {st['eta_s']} s {st['reason']}")
