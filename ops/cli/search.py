"""`vidsearch search`, `vidsearch serve` and `vidsearch plugins install`."""

from __future__ import annotations

import signal
from typing import Annotated

import typer
from pydantic import ValidationError

from vidsearch.core.errors import VidsearchError
from vidsearch.ops.cli.context import console, fail, print_json, spinner, state

plugins_app = typer.Typer(help="Install vidsearch's templates, pipelines, collections and aliases.", no_args_is_help=True)


def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("--k", "-k", help="Hits per page (<= 1000).")] = 10,
    page: Annotated[int, typer.Option(help="Page number (1-based).")] = 1,
    fusion: Annotated[str, typer.Option(help="dynamic_margin (learned gate), rrf, convex or opensearch_hybrid.")] = "dynamic_margin",
    routes: Annotated[str, typer.Option(help="Comma-separated: bm25, knn, knn_text, knn_visual, knn_speech, knn_ocr, knn_audio.")] = "bm25,knn",
    ncl: Annotated[bool, typer.Option(help="Rank the k-NN route with NCL biases.")] = False,
    explain: Annotated[bool, typer.Option(help="Every route's rank and score per hit.")] = False,
    group_by: Annotated[str, typer.Option(help="video (one hit per video) or moment (one hit per moment).")] = "video",
    moments_per_video: Annotated[int, typer.Option(help="Moments per video (1-10), best first.")] = 1,
    min_score: Annotated[float | None, typer.Option(help="Drop hits whose fused score is below this.")] = None,
    autocut: Annotated[int | None, typer.Option(help="Keep the hits before the N-th cliff in the fused scores.")] = None,
    language: Annotated[str | None, typer.Option(help="Filter: language code.")] = None,
    tags: Annotated[str | None, typer.Option(help="Filter: any of these comma-separated tags.")] = None,
    duration_min: Annotated[float | None, typer.Option(help="Filter: minimum duration (s).")] = None,
    duration_max: Annotated[float | None, typer.Option(help="Filter: maximum duration (s).")] = None,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Hybrid search over the catalogue (the stores behind the aliases of the current settings)."""
    from vidsearch.plugins.retrieval.build import build_retriever
    from vidsearch.plugins.retrieval.request import SearchRequest

    try:
        # validated from plain CLI strings (fusion, routes and filters are checked by the model)
        req = SearchRequest.model_validate({
            "q": query, "k": k, "page": page, "fusion": fusion, "routes": tuple(r for r in routes.split(",") if r),
            "ncl": ncl, "explain": explain, "group_by": group_by, "moments_per_video": moments_per_video,
            "min_score": min_score, "autocut": autocut,
            "filters": {"language": language, "tags": tags.split(",") if tags else None,
                        "duration_min": duration_min, "duration_max": duration_max}})
    except ValidationError as exc:
        console.print("[red]invalid search:[/red] " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
        raise typer.Exit(2) from exc
    try:
        settings = state(ctx).settings
        with spinner("loading the text model and searching", enabled=not json):
            res = build_retriever(settings).search(req)  # logs queries only with retrieval.log_queries
    except VidsearchError as exc:
        raise fail(exc, 3) from exc
    if json:
        print_json(res.model_dump(mode="json"))
        return
    for w in res.warnings:
        console.print(f"[yellow]degraded:[/yellow] {w}")
    for h in res.hits:
        moment = f" [{h.moment.start:.1f}-{h.moment.end:.1f}s {h.moment.evidence['kind']}]" if h.moment else ""
        typer.echo(f"{h.rank:>3}. {h.score:.4f}  {h.video_id}  {h.title or ''}{moment}")
    console.print(f"{res.candidates} candidates, weights {res.weights}, {res.took_ms} ms")


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings.retrieval.api_host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings.retrieval.api_port).")] = None,
) -> None:
    """Serve the HTTP API, OpenAPI docs (/docs) and the results page (/).

    Without `retrieval.api_token` it only binds to loopback addresses (unless
    `retrieval.api_allow_unauthenticated_remote`); the Host allow-list defaults to the bound host."""
    import uvicorn

    from vidsearch.ops.api.app import create_app
    from vidsearch.ops.api.security import check_bind
    from vidsearch.plugins.retrieval.build import build_retriever

    settings = state(ctx).settings
    if host:  # the bound address decides the bind check and the default Host allow-list
        settings = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update={"api_host": host})})
    try:
        check_bind(settings)  # before loading models: a refused bind fails in a second, not a minute
        app = create_app(build_retriever(settings), settings)
    except VidsearchError as exc:
        raise fail(exc) from exc
    # uvicorn re-raises the SIGTERM it handled once its graceful shutdown is done; with the default
    # handler underneath, a clean stop would end as "killed by SIGTERM" (-15) instead of exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(app, host=settings.retrieval.api_host, port=port or settings.retrieval.api_port, log_level="info")


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


@plugins_app.command("install")
def install(
    ctx: typer.Context,
    opensearch: Annotated[str | None, typer.Option("--opensearch", help="OpenSearch URL (default: settings).")] = None,
    milvus: Annotated[str | None, typer.Option("--milvus", help="Milvus URI (default: settings).")] = None,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Install (idempotently) the index template, search pipelines, collection and aliases."""
    from vidsearch.plugins.install import install_all

    settings = state(ctx).settings
    if opensearch:
        settings = settings.model_copy(update={"opensearch": settings.opensearch.model_copy(update={"url": opensearch})})
    if milvus:
        settings = settings.model_copy(update={"milvus": settings.milvus.model_copy(update={"uri": milvus})})
    try:
        report = install_all(settings)
    except VidsearchError as exc:
        raise fail(exc) from exc
    print_json(report) if json else console.print(report)


ncl_app = typer.Typer(help="NCL normalisation: per-video biases from the query bank.", no_args_is_help=True)


@ncl_app.command("recompute")
def ncl_recompute(
    ctx: typer.Context,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recompute every video's NCL bias (both stores) from the query log (or the model's bank)."""
    from vidsearch.plugins.retrieval.ncl_jobs import recompute_from_settings

    try:
        report = recompute_from_settings(state(ctx).settings)
    except (VidsearchError, ValueError) as exc:
        raise fail(exc) from exc
    print_json(report) if json else console.print(report)
