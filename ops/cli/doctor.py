"""`vidsearch doctor [--json]`: what is missing from this machine, and the command that fixes it.
Exit code 0 when everything required is present (warnings allowed), 1 otherwise."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from vidsearch.ops.cli.context import console, print_json, spinner, state

MARK = {"ok": "[green]ok  [/green]", "warn": "[yellow]warn[/yellow]", "fail": "[red]FAIL[/red]"}


def doctor(ctx: typer.Context, json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check Python, PyAV and its codecs, the JDKs, every model package and its weights, free
    disk, and whether the configured stores answer (2 s timeouts)."""
    from vidsearch.ops.doctor import exit_code, run_all

    with spinner("checking the environment", enabled=not json):
        checks = run_all(state(ctx).settings)
    code = exit_code(checks)
    if json:
        print_json({"ok": code == 0, "checks": [c.as_dict() for c in checks]})
    else:
        for c in checks:
            line = f"{MARK[c.status]} {escape(c.name):<28} {escape(c.detail)}"
            console.print(line, highlight=False)
            if c.fix and c.status != "ok":
                console.print(f"     [dim]fix:[/dim] {escape(c.fix)}", highlight=False)
        failed = [c.name for c in checks if c.status == "fail"]
        warned = [c.name for c in checks if c.status == "warn"]
        console.print(f"\n{len(checks)} checks: {len(failed)} failed, {len(warned)} warnings"
                      + ("" if failed else " - everything required is present"), highlight=False)
    raise typer.Exit(code)
