"""FastAPI app: /search, /videos/{id}, /videos/{id}/thumbnail, /videos/{id}/media, /health, and
the results page at /. OpenAPI docs at /docs.

Bad requests get a 4xx with a message (422 for invalid values, 400 for unknown parameters); a
store being down degrades results (`degraded: true`, `warnings`), and only when no route can be
served is it a 503. Nothing here returns a 500 on purpose.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from vidsearch.connector.errors import MediaPolicyError
from vidsearch.ops.api.thumbnails import media_path, thumbnail_jpeg
from vidsearch.ops.settings import Settings
from vidsearch.plugins.retrieval.errors import AllRoutesFailedError, store_unavailable_errors
from vidsearch.plugins.retrieval.request import Filters, SearchRequest
from vidsearch.plugins.retrieval.retriever import Retriever, SearchResponse

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("page.html")
SCALARS = {"q", "k", "page", "fusion", "normalization", "ncl", "explain", "moments"}
LISTS = {"routes"}
FILTERS = set(Filters.model_fields)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def parse_query_params(params: dict[str, str]) -> SearchRequest:
    """GET parameters -> SearchRequest; unknown names are refused, not ignored."""
    unknown = sorted(set(params) - SCALARS - LISTS - FILTERS)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; filters are {sorted(FILTERS)}")
    body: dict[str, Any] = {k: v for k, v in params.items() if k in SCALARS}
    for k in LISTS:
        if k in params:
            body[k] = tuple(x for x in params[k].split(",") if x)
    filters: dict[str, Any] = {k: v for k, v in params.items() if k in FILTERS}
    if "tags" in filters:
        filters["tags"] = [t for t in filters["tags"].split(",") if t]
    body["filters"] = filters
    return SearchRequest.model_validate(body)


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors())


def create_app(retriever: Retriever, settings: Settings) -> FastAPI:
    app = FastAPI(title="vidsearch", version="0.1.0",
                  description="Hybrid (BM25 + modality-balanced embeddings) video search with moments.")

    def run(req: SearchRequest) -> SearchResponse | JSONResponse:
        try:
            return retriever.search(req)
        except AllRoutesFailedError as exc:
            log.error("search failed: %s", exc)
            return _error(503, str(exc))

    @app.get("/search", response_model=SearchResponse)
    def search_get(request: Request) -> Any:
        try:
            req = parse_query_params(dict(request.query_params))
        except ValidationError as exc:
            return _error(422, _validation_message(exc))
        except ValueError as exc:
            return _error(400, str(exc))
        return run(req)

    @app.post("/search", response_model=SearchResponse)
    async def search_post(request: Request) -> Any:
        try:
            req = SearchRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            return _error(422, _validation_message(exc))
        return run(req)

    def _doc(video_id: str) -> dict[str, Any]:
        warnings: list[str] = []
        docs = retriever.fetch([video_id], warnings)
        if warnings and not docs:
            raise HTTPException(503, "; ".join(warnings))
        if video_id not in docs:
            raise HTTPException(404, f"no video {video_id!r}")
        return docs[video_id]

    @app.get("/videos/{video_id}")
    def video(video_id: str) -> dict[str, Any]:
        doc = _doc(video_id)
        return {k: v for k, v in doc.items() if k != "keyframes"} | {
            "keyframe_times": [k["t"] for k in doc.get("keyframes") or []]}

    def _media(video_id: str) -> Path:
        doc = _doc(video_id)
        if not doc.get("media_uri"):
            raise HTTPException(404, f"video {video_id!r} has no media")
        try:
            return media_path(doc["media_uri"], settings.indexer.media_policy)
        except MediaPolicyError as exc:
            raise HTTPException(403, str(exc)) from exc

    @app.get("/videos/{video_id}/thumbnail")
    def thumbnail(video_id: str, t: float = Query(0.0, ge=0, le=24 * 3600)) -> Response:
        path = _media(video_id)
        try:
            data = thumbnail_jpeg(str(path), round(t, 2), path.stat().st_mtime_ns)
        except Exception as exc:  # any decoder failure is this file's problem, not the server's
            raise HTTPException(422, f"cannot decode a frame at {t}s: {type(exc).__name__}") from exc
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.get("/videos/{video_id}/media")
    def media(video_id: str) -> FileResponse:
        return FileResponse(_media(video_id), media_type="video/mp4")

    @app.get("/health")
    def health() -> dict[str, Any]:
        stores = {}
        for role, store in retriever.stores.items():
            try:
                store.bm25("health", Filters(), 1) if role == "lexical" else store.fetch(["__health__"])
                stores[role] = {"store": store.name, "ok": True}
            except store_unavailable_errors() as exc:
                stores[role] = {"store": store.name, "ok": False, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        ok = all(s["ok"] for s in stores.values())
        return {"status": "ok" if ok else "degraded", "stores": stores, "model_version": retriever.encoder.version}

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    return app
