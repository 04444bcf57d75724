"""`vidsearch bench ...`: benchmarks that print JSON (never assertions)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vidsearch.ops.cli.context import console, print_json, state

app = typer.Typer(help="Benchmarks: figures measured against a baseline in the same run, printed as JSON.")


def _progress(message: str) -> None:
    console.print(f"[dim]{message}[/dim]")


def _emit(report: dict[str, Any], as_json: bool) -> None:
    """`--json` prints one plain JSON document for scripts; otherwise it is pretty-printed."""
    if as_json:
        print_json(report)
    else:
        console.print_json(data=report)


@app.command("encode")
def bench_encode(ctx: typer.Context, json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Per-stage ms per video on the real clips, and onnxruntime-over-torch speedups."""
    from vidsearch.ops.bench.encode import run

    report = run(state(ctx).settings, progress=_progress)
    _emit(report, json)


@app.command("ocr")
def bench_ocr(
    ctx: typer.Context,
    frames: Annotated[int, typer.Option(help="Keyframes with a drawn caption per split.")] = 200,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The OCR text-presence gate: its recall on keyframes with known text and the caption-word
    recall of gated OCR against ungated (validation captions choose the gate, test captions report
    it), and the milliseconds per plain keyframe it saves."""
    from vidsearch.ops.bench.ocr import run

    _emit(run(state(ctx).settings, frames, progress=_progress), json)


@app.command("text-graphs")
def bench_text_graphs(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="A Tux Paint dataset folder (`vidsearch dataset tuxpaint`).")],
    graphs: Annotated[str, typer.Option(help="Comma-separated ONNX text graphs to judge.")] = "fp32,int8_dynamic,int8_dynamic_per_tensor,int8_dynamic_ffn,int8_static,int8_smooth,int8_smooth_mixed",
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """ONNX text graphs against torch by the ranking users see: top-10 overlap, R@sum and cosine
    on the validation split (where the fastest passing graph is chosen), then the test split for
    that graph, with each graph's speedup on real captions."""
    from vidsearch.ops.bench.text_graphs import GRAPHS, run

    chosen = tuple(g.strip() for g in graphs.split(",") if g.strip())
    if not chosen or set(chosen) - set(GRAPHS):
        raise typer.BadParameter(f"use some of {', '.join(GRAPHS)}", param_hint="--graphs")
    report = run(state(ctx).settings, data, chosen, progress=_progress)
    _emit(report, json)


@app.command("ingest")
def bench_ingest(
    ctx: typer.Context,
    events: Annotated[int, typer.Option(help="Precomputed-feature events.")] = 2000,
    media_rounds: Annotated[int, typer.Option(help="Times each real clip is sent as a media event.")] = 1,
    clients: Annotated[str, typer.Option(help="Comma-separated Kafka clients to measure (confluent, kafka-python).")] = "confluent,kafka-python",
    scale: Annotated[str, typer.Option(help="Comma-separated catalogue sizes (e.g. 10000,100000): the full pipeline at each, "
                                                "with peak memory and disk per service.")] = "",
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Pipeline (Kafka + OpenSearch + Milvus) throughput against the encoders alone, same events,
    same run, once per Kafka client (plus the clients alone: produce, consume and commit); needs
    the stack (`vidsearch stack up`). `--events 0 --media-rounds 0 --scale 10000,100000` runs only
    the cost-against-size rows."""
    from vidsearch.ops.bench.ingest import CLIENTS, run

    chosen = tuple(c.strip() for c in clients.split(",") if c.strip())
    if not chosen or set(chosen) - set(CLIENTS):
        raise typer.BadParameter(f"use some of {', '.join(CLIENTS)}", param_hint="--clients")
    try:
        sizes = tuple(int(x) for x in scale.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter("comma-separated positive integers", param_hint="--scale") from None
    if any(n <= 0 for n in sizes):
        raise typer.BadParameter("comma-separated positive integers", param_hint="--scale")
    report = run(state(ctx).settings, events, media_rounds, progress=_progress, clients=chosen, scale=sizes)
    _emit(report, json)


@app.command("query")
def bench_query(
    ctx: typer.Context,
    sizes: Annotated[str, typer.Option(help="Comma-separated catalogue sizes.")] = "10000,100000,300000",
    queries: Annotated[int, typer.Option(help="Queries per size.")] = 200,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """p50/p95/p99 of bm25, knn and fused routes, and k-NN recall@10 against exact search, on
    OpenSearch (needs the stack)."""
    from vidsearch.ops.bench.query import run

    report = run(state(ctx).settings, tuple(int(s) for s in sizes.split(",")), queries,
                 progress=_progress)
    _emit(report, json)


@app.command("reembed")
def bench_reembed(
    ctx: typer.Context,
    videos: Annotated[int, typer.Option(help="Real (rendered Tux Paint) videos for the head-only vs full comparison.")] = 24,
    replicas: Annotated[int, typer.Option(help="Copies of their features in the catalogue the worker runs re-embed.")] = 40,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Head-only (stored features) vs full re-extraction videos/s, same videos, same run; then whole
    re-embedding jobs with 1 and 2 Celery workers (needs the stack)."""
    from vidsearch.ops.bench.reembed import run

    report = run(state(ctx).settings, videos, replicas, progress=_progress)
    _emit(report, json)


@app.command("copies")
def bench_copies(
    ctx: typer.Context,
    sizes: Annotated[str, typer.Option(help="Comma-separated catalogue sizes, in videos.")] = "1000,10000,100000",
    frames_per_video: Annotated[int, typer.Option(help="Keyframes per synthetic video.")] = 8,
    queries: Annotated[int, typer.Option(help="Query videos per size.")] = 50,
    dim: Annotated[int, typer.Option(help="Fingerprint dimension.")] = 256,
    index_type: Annotated[str | None, typer.Option(help="Override the frame index (FLAT, IVF_FLAT).")] = None,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The frame index on a throwaway milvus-lite file (no stack needed): insert rows/s, batched
    ANN and full same-source search p50/p95/p99, against exact numpy search in the same run."""
    from vidsearch.ops.bench.copies import run_copies_bench

    report = run_copies_bench(state(ctx).settings, tuple(int(s) for s in sizes.split(",")), frames_per_video,
                              queries, dim, progress=_progress,
                              index_type=index_type)
    _emit(report, json)
