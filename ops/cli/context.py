"""State shared by every CLI command: the loaded settings and output mode."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from vidsearch.core.settings import Settings

console = Console(stderr=True, soft_wrap=True)  # never split an error across lines


@dataclass
class CliState:
    settings: Settings
    log_file: Path | None = None
    verbose: bool = False


# The current command's log file and verbosity, for errors raised before or outside a context
# (main()'s last-resort handler).
current: dict[str, Any] = {"log_file": None, "verbose": False}


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState), "root callback did not run"
    current.update(log_file=obj.log_file, verbose=obj.verbose)
    return obj


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def hint_for(exc: BaseException) -> str | None:
    """What to do about an error, by its handling class (core/errors.py)."""
    from vidsearch.core.errors import DataError, DeploymentError, InfrastructureError

    if isinstance(exc, InfrastructureError) and "does not exist" in str(exc):
        return ("nothing is indexed there yet: `vidsearch ingest --source file:DIR` or `vidsearch demo`, or point "
                "VIDSEARCH_CONFIG at an indexed catalogue (the demo prints its config)")
    if isinstance(exc, InfrastructureError):
        return "is the service running? `vidsearch doctor` checks every store; `vidsearch stack up` starts the local ones"
    if isinstance(exc, DeploymentError):
        return "`vidsearch doctor` lists what is missing and the command that installs it"
    if isinstance(exc, DataError):
        return "fix or skip this input; the others are unaffected"
    return None


def fail(exc: Exception, code: int = 2, hint: str | None = None) -> typer.Exit:
    """Print a deliberate error as ONE line, `Type: message (what to do)`, on stderr; raise the
    returned Exit. The traceback, if any, is in the log file (or on stderr with -v)."""
    import logging

    logging.getLogger("cli.error").debug("command failed", exc_info=exc)  # to the log file only
    message = " ".join(str(exc).split()) or type(exc).__name__  # one line, whatever the message holds
    what = hint or hint_for(exc)
    from rich.markup import escape

    console.print(f"[red]{type(exc).__name__}:[/red] {escape(message)}" + (f" [dim]({escape(what)})[/dim]" if what else ""),
                  highlight=False)
    return typer.Exit(code)


def crash(exc: BaseException) -> int:
    """Last resort for an unexpected exception: one line on the terminal, the traceback in the
    log file (or on stderr with -v). Returns the exit code."""
    import logging
    import traceback

    logging.getLogger("cli.crash").error("unexpected error", exc_info=exc)
    if current["verbose"]:
        traceback.print_exception(exc)
    where = f"traceback in {current['log_file']}" if current["log_file"] else "run again with -v for the traceback"
    message = " ".join(str(exc).split())[:500]
    from rich.markup import escape

    console.print(f"[red]{type(exc).__name__}:[/red] {escape(message)} [dim](unexpected; {escape(where)})[/dim]", highlight=False)
    return 1


@contextlib.contextmanager
def spinner(description: str, enabled: bool = True) -> Iterator[None]:
    """A transient spinner on stderr for a step that takes seconds (loading models, connecting)."""
    if not enabled or not console.is_terminal:
        yield
        return
    with console.status(description):
        yield


def progress(description: str):  # noqa: ANN201 - an (items, total) -> iterable adapter for rich.track
    from rich.progress import track

    return lambda items, total: track(items, total=total, description=description, console=console)
