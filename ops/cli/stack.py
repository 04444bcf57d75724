"""`vidsearch stack up | down | status | logs`: the local Kafka/OpenSearch/Redis/Milvus stack."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from vidsearch.ops.cli.context import console, print_json, state
from vidsearch.ops.stack.errors import StackError
from vidsearch.ops.stack.manager import Layout, Stack

app = typer.Typer(help="Start, stop and inspect the local stack on 127.0.0.1 (Kafka, OpenSearch, Redis, Milvus).")

Only = Annotated[
    list[str] | None,
    typer.Option("--service", "-s", help="Limit to this service (repeatable): kafka, opensearch, redis, milvus."),
]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def _stack(ctx: typer.Context, only: list[str] | None, layout: Layout | None = None) -> Stack:
    try:
        return Stack(state(ctx).settings, only, layout)
    except StackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _client_hint(stack: Stack) -> dict[str, str]:
    """What clients should be configured with to know every node (the settings name one)."""
    kafka = [s for s in stack.services.values() if s.kind == "kafka"]
    search = [s for s in stack.services.values() if s.kind == "opensearch"]
    out = {}
    if len(kafka) > 1:
        out["VIDSEARCH_KAFKA__BOOTSTRAP_SERVERS"] = ",".join(f"127.0.0.1:{s.ports()['broker']}" for s in kafka)
    if len(search) > 1:
        out["VIDSEARCH_OPENSEARCH__URL"] = ",".join(f"http://127.0.0.1:{s.ports()['http']}" for s in search)
    return out


@app.command()
def up(
    ctx: typer.Context,
    service: Only = None,
    json: Json = False,
    kafka_brokers: Annotated[int | None, typer.Option(
        "--kafka-brokers", min=1, max=9, help="Kafka brokers (KRaft; a controller quorum of 3 from 3 brokers). "
        "Default: the recorded layout, else stack.kafka_brokers.")] = None,
    opensearch_nodes: Annotated[int | None, typer.Option(
        "--opensearch-nodes", min=1, max=9, help="OpenSearch nodes, k-NN on each. Default: the recorded layout, else stack.opensearch_nodes.")] = None,
) -> None:
    """Install (cached) and start the services, waiting on real health checks. Idempotent.

    With several nodes, node k listens on the first node's ports + 2(k-1) (Kafka) or + (k-1)
    (OpenSearch); the command prints the client settings that name every node."""
    layout = None
    if kafka_brokers is not None or opensearch_nodes is not None:
        base = _stack(ctx, service).layout
        layout = Layout(kafka_brokers or base.kafka_brokers, opensearch_nodes or base.opensearch_nodes)
    stack = _stack(ctx, service, layout)
    t0 = time.monotonic()
    try:
        results = stack.up(on_event=lambda s, m: console.print(f"[cyan]{s:>10}[/cyan] {m}"))
    except StackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    rss_mb = round(stack.rss_bytes() / 2**20, 1)
    client_env = _client_hint(stack)
    report = {
        "services": {
            r.service: {"start_s": round(r.seconds, 2), "already_running": r.already_running, **r.health.as_dict()}
            for r in results
        },
        "total_s": round(time.monotonic() - t0, 2),
        "rss_mb": rss_mb,
        "layout": stack.layout.as_dict(),
        "client_env": client_env,
    }
    if json:
        print_json(report)
        return
    for r in results:
        note = "already running" if r.already_running else f"started in {r.seconds:.1f}s"
        console.print(f"[green]{r.service:>12}[/green] {r.health.version or '?':<14} {note}")
    console.print(f"stack up in {report['total_s']:.1f}s, resident memory {rss_mb:.0f} MB")
    for var, value in client_env.items():
        console.print(f"clients: {var}={value}")


@app.command()
def down(
    ctx: typer.Context,
    service: Only = None,
    json: Json = False,
    wipe: Annotated[bool, typer.Option("--wipe", help="Also delete the services' data (every topic, index, collection) "
                                                      "and the recorded layout, e.g. to start another cluster layout.")] = False,
) -> None:
    """Stop every node this stack started (whole process groups); no process is left behind."""
    stopped = _stack(ctx, service).down(wipe=wipe)
    if json:
        print_json({"stopped": stopped, "wiped": wipe})
        return
    for name, was_running in stopped.items():
        console.print(f"{name:>12} {'stopped' if was_running else 'was not running'}{' and wiped' if wipe else ''}")


@app.command()
def status(ctx: typer.Context, service: Only = None, json: Json = False) -> None:
    """Each service's and each node's health and version; the clusters' live brokers,
    under-replicated partitions, search nodes and status. Exit code 1 if any node is unhealthy."""
    report = _stack(ctx, service).status()
    if json:
        print_json(report)
    else:
        table = Table("node", "healthy", "version", "pid", "rss MB", "detail")
        for kind, s in report["services"].items():
            for name, m in s["members"].items():
                detail = m.get("error") or ", ".join(m.get("plugins", [])) or m.get("mode", "")
                table.add_row(name, "yes" if m["healthy"] else "[red]no[/red]", str(m["version"]), str(m["pid"]), str(m["rss_mb"]), detail)
            if kind == "kafka":
                console.print(f"kafka: {s.get('brokers', 0)} live broker(s), "
                              f"{s.get('under_replicated_partitions', '?')} under-replicated partition(s)")
            if kind == "opensearch":
                console.print(f"opensearch: {s.get('nodes', 0)} node(s), cluster {s.get('cluster_status', 'unknown')}")
        console.print(table)
    if not report["healthy"]:
        raise typer.Exit(1)


@app.command()
def logs(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="kafka, opensearch, redis or milvus; a cluster's further nodes are kafka-2, opensearch-2, ...")],
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many trailing lines.")] = 60,
) -> None:
    """Print the tail of a service's log."""
    try:
        typer.echo(_stack(ctx, None).logs(name, lines))
    except StackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
