"""`vidsearch ingest`, `ingest status`, `schema`, `dlq replay`: the streaming indexer's CLI."""

from __future__ import annotations

import json as jsonlib
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from vidsearch.ops.cli.context import console, fail, print_json, spinner, state

app = typer.Typer(help="Index video events into Milvus and OpenSearch (Kafka or a file).", invoke_without_command=True)
dlq_app = typer.Typer(help="Dead-letter topic tools.")


def _source(settings, spec: str, group: str | None, restart: bool):  # -> Source
    if spec == "kafka":
        from vidsearch.connector.kafka.topics import ensure_topics
        from vidsearch.connector.sources.kafka import KafkaSource

        if settings.kafka.create_topics:
            ensure_topics(settings)
        return KafkaSource(settings, group_id=group)
    if spec.startswith("file:"):
        from vidsearch.connector.sources.file import FileSource

        path = Path(spec[5:]).expanduser()
        if not path.exists():
            raise typer.BadParameter(f"{path} does not exist", param_hint="--source")
        return FileSource(path, settings.stack.state_dir, restart=restart)
    raise typer.BadParameter("use kafka or file:PATH", param_hint="--source")


@app.callback()
def ingest(
    ctx: typer.Context,
    source: Annotated[str, typer.Option(help="kafka, or file:PATH (JSONL of events, or a folder of videos).")] = "kafka",
    sink: Annotated[list[str] | None, typer.Option(help="milvus and/or opensearch (default: settings; file sources: milvus).")] = None,
    group: Annotated[str | None, typer.Option(help="Kafka consumer group (default: settings).")] = None,
    until_idle: Annotated[float | None, typer.Option(help="Exit after this many seconds without events.")] = None,
    restart: Annotated[bool, typer.Option(help="File source: ignore the saved checkpoint.")] = False,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus metrics on 127.0.0.1:PORT.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the run's figures as JSON.")] = False,
) -> None:
    """Run the indexer: validate -> encode -> write both stores -> commit. SIGTERM finishes the
    batch, commits and exits."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from vidsearch.connector.app import build_pipeline, build_runner, make_writer
    from vidsearch.connector.metrics import Metrics
    from vidsearch.ops.registry.routing import registry_routing

    settings = state(ctx).settings
    sinks = tuple(sink) if sink else (("milvus",) if source.startswith("file:") else settings.indexer.sinks)
    metrics = Metrics()
    port = metrics_port or settings.indexer.metrics_port
    if port:
        metrics.serve(port)
    from vidsearch.core.errors import DeploymentError, InfrastructureError

    try:  # a broken deployment or an unreachable store fails here, before anything is consumed
        with spinner("loading the text model and checking the stores", enabled=not json):
            versions, model = registry_routing(settings) if settings.indexer.use_registry else (None, None)
            pipeline = build_pipeline(settings, make_writer(settings, sinks, versions, model, metrics), metrics)
            src = _source(settings, source, group, restart)
    except (DeploymentError, InfrastructureError) as exc:
        raise fail(exc) from exc
    runner = build_runner(settings, pipeline, src)
    signal.signal(signal.SIGTERM, lambda *_: runner.stop.set())
    signal.signal(signal.SIGINT, lambda *_: runner.stop.set())
    total = src.status().get("total") if source.startswith("file:") else None
    with Progress(TextColumn("[cyan]indexing"), BarColumn(), TextColumn("{task.completed}/{task.total} events"),
                  TimeElapsedColumn(), console=console, disable=json) as progress:
        task = progress.add_task("ingest", total=total)
        runner.on_batch = lambda s: progress.update(task, completed=s.events)
        try:
            stats = runner.run(until_idle_s=until_idle)
        except DeploymentError as exc:  # e.g. an encoder package that failed to load mid-stream
            src.close()
            pipeline.close()
            raise fail(exc) from exc
    src.close()
    pipeline.close()
    report: dict[str, Any] = {**stats.as_dict(), "source": src.status(), "sinks": list(sinks)}
    if json:
        print_json(report)
    else:
        console.print(f"indexed {stats.indexed}, deleted {stats.deleted}, dead-lettered {stats.dead} in {stats.wall_s:.1f}s")


@app.command()
def status(ctx: typer.Context, json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Consumer lag per partition (from Kafka) and the running indexers' throughput."""
    from confluent_kafka import Consumer, TopicPartition

    from vidsearch.connector.app import status_files
    from vidsearch.connector.kafka.config import kafka_client_config

    settings = state(ctx).settings
    cfg = settings.indexer
    consumer = Consumer({**kafka_client_config(settings.kafka), "group.id": cfg.group_id, "enable.auto.commit": False})
    lag: dict[str, Any] = {}
    try:
        meta = consumer.list_topics(cfg.topic, timeout=10)
        parts = [TopicPartition(cfg.topic, p) for p in meta.topics[cfg.topic].partitions] if cfg.topic in meta.topics else []
        committed = consumer.committed(parts, timeout=10) if parts else []
        for tp in committed:
            lo, hi = consumer.get_watermark_offsets(TopicPartition(cfg.topic, tp.partition), timeout=10)
            done = tp.offset if tp.offset >= 0 else lo
            lag[str(tp.partition)] = {"committed": tp.offset, "end": hi, "lag": hi - done}
    finally:
        consumer.close()
    runners = []
    for path in status_files(settings):
        try:
            data = jsonlib.loads(path.read_text())
        except ValueError:
            continue
        data["stale"] = time.time() - data.get("time", 0) > 30
        runners.append({"file": path.name, **data})
    report = {"topic": cfg.topic, "group": cfg.group_id, "partitions": lag, "total_lag": sum(p["lag"] for p in lag.values()), "indexers": runners}
    if json:
        print_json(report)
    else:
        console.print_json(data=report)


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    topic: Annotated[str | None, typer.Option(help="Produce to this topic instead of each record's original topic.")] = None,
    limit: Annotated[int | None, typer.Option(help="Replay at most this many.")] = None,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Re-feed dead letters to their original topic (after fixing what made them fail)."""
    from vidsearch.connector.dlq import replay

    report = replay(state(ctx).settings, topic=topic, limit=limit)
    print_json(report) if json else console.print(report)


def schema(json: Annotated[bool, typer.Option("--json", help="Print the JSON Schema.")] = True) -> None:
    """The JSON Schema of video events, for producers."""
    from vidsearch.connector.events import json_schema

    print_json(json_schema())
