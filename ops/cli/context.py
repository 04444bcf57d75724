"""State shared by every CLI command: the loaded settings and output mode."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console

from vidsearch.ops.settings import Settings

console = Console(stderr=True, soft_wrap=True)  # never split an error across lines


@dataclass
class CliState:
    settings: Settings


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState), "root callback did not run"
    return obj


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def fail(exc: Exception, code: int = 2) -> typer.Exit:
    """Print a deliberate error as `Type: message` on stderr; raise the returned Exit."""
    console.print(f"[red]{type(exc).__name__}:[/red] {exc}")
    return typer.Exit(code)


def progress(description: str):  # noqa: ANN201 - an (items, total) -> iterable adapter for rich.track
    from rich.progress import track

    return lambda items, total: track(items, total=total, description=description, console=console)
