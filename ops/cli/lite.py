"""`vidsearch lite status|stop`: the private milvus-lite servers of embedded catalogues.

An embedded catalogue (`milvus.uri = "./x.db"`) is served by a server of its own that every
process opening it shares (plugins/milvus/lite.py); it exits by itself `milvus.lite_idle_s` after
its last client, and these commands show or end it at once."""

from __future__ import annotations

from typing import Annotated

import typer

from vidsearch.ops.cli.context import console, print_json, state
from vidsearch.plugins.milvus import lite
from vidsearch.plugins.milvus.client import is_embedded

app = typer.Typer(help="Private milvus-lite servers of embedded catalogues.", no_args_is_help=True)


@app.command("status")
def status(json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the running private servers (catalogue, pid, port)."""
    servers = lite.servers()
    if json:
        print_json({"servers": servers})
        return
    if not servers:
        console.print("no private milvus-lite server is running")
    for s in servers:
        typer.echo(f"{s['file']}  pid={s['pid']}  http://127.0.0.1:{s['port']}")


@app.command("stop")
def stop(
    ctx: typer.Context,
    catalogue: Annotated[str | None, typer.Argument(help="Catalogue path (default: the configured milvus.uri).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Stop every private server of this user.")] = False,
) -> None:
    """Stop the server of one catalogue (default: the configured one), or all of them."""
    if all_:
        stopped = lite.stop_all()
    else:
        uri = catalogue or state(ctx).settings.milvus.uri
        if not is_embedded(uri):
            console.print(f"{uri} is a server URI, not an embedded catalogue; nothing to stop")
            raise typer.Exit(2)
        stopped = [str(lite.catalogue_path(uri))] if lite.stop(uri) else []
    console.print(f"stopped {len(stopped)} server(s)" + (": " + ", ".join(stopped) if stopped else ""))
