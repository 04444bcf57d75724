"""Entry point of the `vidsearch` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidsearch.core.errors import ConfigError
from vidsearch.core.settings import load_settings
from vidsearch.ops.cli import (
    bench,
    context,
    copies,
    dataset,
    demo,
    doctor,
    encode,
    fusion,
    ingest,
    lite,
    model,
    models,
    pretrain,
    search,
    stack,
    workers,
)
from vidsearch.ops.cli.context import CliState, console, crash, print_json, state
from vidsearch.ops.logs import setup_logging

app = typer.Typer(
    help="vidsearch: semantic, multimodal video search for Kafka, OpenSearch, Milvus and Celery stacks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(workers.app, name="workers")
app.add_typer(encode.encoders_app, name="encoders")
app.add_typer(bench.app, name="bench")
app.command("encode")(encode.encode)
app.add_typer(ingest.app, name="ingest")
app.add_typer(ingest.dlq_app, name="dlq")
app.command("schema")(ingest.schema)
app.command("demo")(demo.demo)
app.add_typer(dataset.app, name="dataset")
app.command("train")(model.train)
app.command("pretrain")(pretrain.pretrain)
app.command("eval")(model.evaluate)
app.command("prior-weight")(model.prior_weight)
app.command("ablation")(model.ablation)
app.command("train-fusion")(fusion.train_fusion)
app.command("search")(search.search)
app.command("copies")(copies.copies)
app.command("train-fingerprint")(copies.train_fingerprint)
app.command("serve")(search.serve)
app.add_typer(search.plugins_app, name="plugins")
app.add_typer(search.ncl_app, name="ncl")
app.add_typer(models.models_app, name="models")
app.add_typer(models.reembed_app, name="reembed")
app.command("doctor")(doctor.doctor)
app.add_typer(lite.app, name="lite")
config_app = typer.Typer(help="Inspect the effective configuration.")
app.add_typer(config_app, name="config")


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML config file (default: $VIDSEARCH_CONFIG).", envvar="VIDSEARCH_CONFIG"),
    ] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR (implies -v).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Logs, library warnings and tracebacks on stderr too.")] = False,
) -> None:
    """Logs go to <state_dir>/logs/vidsearch.log; the terminal shows progress, results and
    one-line errors unless -v."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        console.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2) from exc
    log_file = setup_logging(log_level or settings.log_level, settings.stack.state_dir / "logs" / "vidsearch.log",
                             verbose=verbose or log_level is not None)
    ctx.obj = CliState(settings=settings, log_file=log_file, verbose=verbose or log_level is not None)
    context.current.update(log_file=log_file, verbose=verbose or log_level is not None)  # for crash()


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the effective settings as JSON, secrets masked."""
    print_json(state(ctx).settings.public_dict())


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, traceback in the log
        raise SystemExit(crash(exc)) from None
