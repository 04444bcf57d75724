"""FastAPI app: /search, /videos/{id}, /videos/{id}/thumbnail, /videos/{id}/media, /health, and
the results page at /. OpenAPI docs at /docs.

Bad requests get a 4xx with a message (422 for invalid values, 400 for unknown parameters, 413 for
an oversized body); a store being down degrades results (`degraded: true`, `warnings`), and only
when no route can be served is it a 503. Every error body is `{"error": ..., "request_id": ...}`:
a class-level message, never exception text or a path; the details are logged under the id.
Host allow-list, bearer auth, CORS and the bind check live in `security.py`.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from vidsearch.connector.errors import MediaPolicyError
from vidsearch.connector.media_policy import resolve_media_uri
from vidsearch.core.errors import DataError, DeploymentError, InfrastructureError
from vidsearch.core.filters import Filters
from vidsearch.core.settings import MediaPolicySettings, Settings
from vidsearch.ops.api.security import (
    REQUEST_ID_HEADER,
    BearerAuthMiddleware,
    RequestContextMiddleware,
    allowed_hosts,
    check_bind,
    error_response,
    public_document,
    public_media_uri,
    public_warning,
    redact_access_log,
    request_id,
)
from vidsearch.ops.api.thumbnails import thumbnail_jpeg
from vidsearch.plugins.copies.service import UnknownVideoError
from vidsearch.plugins.retrieval.errors import AllRoutesFailedError, store_unavailable_errors
from vidsearch.plugins.retrieval.query_log import apply_opt_in
from vidsearch.plugins.retrieval.request import SearchRequest
from vidsearch.plugins.retrieval.retriever import Retriever, SearchResponse

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("page.html")
SCALARS = {"q", "k", "page", "fusion", "normalization", "ncl", "explain", "moments", "group_by", "moments_per_video",
           "min_score", "autocut"}
LISTS = {"routes"}
FILTERS = set(Filters.model_fields)


# Upload content types POST /copies takes, and the suffix the decoder sees (it checks the bytes too).
UPLOAD_TYPES = {"video/mp4": ".mp4", "video/webm": ".webm", "video/x-matroska": ".mkv", "video/quicktime": ".mov",
                "video/x-msvideo": ".avi", "image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}


class CopyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video_id: str = Field(min_length=1, max_length=256)
    method: Literal["tn", "dp"] | None = None
    limit: int = Field(10, ge=1, le=100)


class RemoteMediaNotServed(DataError):
    """The stored media URI is http(s): the API streams local files only (proxying would make it
    an open fetcher of whatever a producer named)."""


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


def _validation_message(errors: list[Any]) -> str:
    return "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'request'}: {e['msg']}" for e in errors)


def stored_media_path(uri: str, policy: MediaPolicySettings) -> Path:
    """The local file a stored `media_uri` names, checked against the media policy *now* (the
    roots may have changed since ingestion, and the store is not the last line of defence).
    `file://` URIs and plain paths resolve the same way."""
    try:
        remote = urlsplit(uri).scheme.lower() in ("http", "https")
    except ValueError:
        remote = False  # malformed: resolve_media_uri names the problem
    if remote:
        raise RemoteMediaNotServed(uri)
    return resolve_media_uri(uri, policy)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` (by Content-Length or
    while streaming), so an oversized request is never buffered whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body is over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"request body is over {limit} bytes")
    return bytes(body)


async def _save_body(request: Request, path: Path, limit: int) -> None:
    """Stream an upload to `path`, refused with 413 past `limit` (never held in memory whole)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"upload is over {limit} bytes")
    size = 0
    with open(path, "wb") as fh:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"upload is over {limit} bytes")
            fh.write(chunk)
    if size == 0:
        raise HTTPException(422, "the upload is empty")


def _install_error_handlers(app: FastAPI) -> None:
    """Known failures -> a status and a class-level message; details only in the server log."""

    def handler(status: int, message: str, level: int = logging.WARNING):  # noqa: ANN202
        async def handle(request: Request, exc: Exception) -> JSONResponse:
            log.log(level, "request failed request_id=%s status=%s path=%s error=%s: %s", request_id(request),
                    status, request.url.path, type(exc).__name__, exc)
            return error_response(request, status, message)
        return handle

    unavailable = "the search stores are unavailable; try again later"
    app.add_exception_handler(AllRoutesFailedError, handler(503, "no route could be served: " + unavailable, logging.ERROR))
    app.add_exception_handler(InfrastructureError, handler(503, "a backing service is unavailable; try again later", logging.ERROR))
    for cls in store_unavailable_errors():
        if cls is not OSError:  # a bare OSError is more often a bug or a file problem than a store
            app.add_exception_handler(cls, handler(503, unavailable, logging.ERROR))
    app.add_exception_handler(UnknownVideoError, handler(404, "no such video in the copy index"))
    app.add_exception_handler(MediaPolicyError, handler(403, "the media is not allowed by the server's media policy"))
    app.add_exception_handler(RemoteMediaNotServed, handler(404, "remote (http) media is not served by this API"))
    app.add_exception_handler(DataError, handler(422, "the request's data could not be processed"))
    app.add_exception_handler(DeploymentError, handler(500, "the server is misconfigured; see its log", logging.ERROR))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(request, exc.status_code, detail, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, 422, _validation_message(list(exc.errors())))


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    """Added innermost first: request id/500s > Host check > CORS > auth > routes."""
    cfg = settings.retrieval
    if cfg.api_token is not None:
        app.add_middleware(BearerAuthMiddleware, token=cfg.api_token.get_secret_value())
        redact_access_log()
    if cfg.api_cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.api_cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], expose_headers=[REQUEST_ID_HEADER])
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings), www_redirect=False)
    app.add_middleware(RequestContextMiddleware)


def create_app(retriever: Retriever, settings: Settings) -> FastAPI:
    """The app for `settings` (its `retrieval.api_host` is the address it will be bound to).
    Raises ConfigError for an unauthenticated non-loopback bind."""
    check_bind(settings)
    retriever = apply_opt_in(retriever, settings)
    app = FastAPI(title="vidsearch", version="0.1.0",
                  description="Hybrid (BM25 + modality-balanced embeddings) video search with moments.")
    _install_error_handlers(app)
    _install_middleware(app, settings)
    limit = settings.retrieval.api_max_body_bytes
    limit_json = limit

    def run(req: SearchRequest, rid: str) -> SearchResponse:
        res = retriever.search(req)  # AllRoutesFailedError -> 503 by its handler
        if res.warnings:
            log.info("search degraded request_id=%s warnings=%s", rid, res.warnings)
        hits = [h.model_copy(update={"media_uri": public_media_uri(h.media_uri, h.video_id, settings)}) for h in res.hits]
        return res.model_copy(update={"hits": hits, "warnings": [public_warning(w) for w in res.warnings]})

    @app.get("/search", response_model=SearchResponse)
    def search_get(request: Request) -> Any:
        try:
            req = parse_query_params(dict(request.query_params))
        except ValidationError as exc:
            return error_response(request, 422, _validation_message(exc.errors()))
        except ValueError as exc:
            return error_response(request, 400, str(exc))
        return run(req, request_id(request))

    @app.post("/search", response_model=SearchResponse)
    async def search_post(request: Request) -> Any:
        # JSON only: a cross-site form cannot send it without a CORS preflight
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return error_response(request, 415, "the body must be JSON (Content-Type: application/json)")
        body = await _read_body(request, limit)
        try:
            req = SearchRequest.model_validate_json(body)
        except ValidationError as exc:
            return error_response(request, 422, _validation_message(exc.errors()))
        return await run_in_threadpool(run, req, request_id(request))

    def _doc(video_id: str) -> dict[str, Any]:
        warnings: list[str] = []
        docs = retriever.fetch([video_id], warnings)
        if warnings and not docs:
            log.error("fetch failed video_id=%s warnings=%s", video_id, warnings)
            raise HTTPException(503, "the search stores are unavailable; try again later")
        if video_id not in docs:
            raise HTTPException(404, f"no video {video_id!r}")
        return docs[video_id]

    @app.get("/videos/{video_id}")
    def video(video_id: str) -> dict[str, Any]:
        doc = public_document(_doc(video_id), video_id, settings)
        return {k: v for k, v in doc.items() if k != "keyframes"} | {
            "keyframe_times": [k["t"] for k in doc.get("keyframes") or []]}

    def _media(video_id: str) -> Path:
        doc = _doc(video_id)
        if not doc.get("media_uri"):
            raise HTTPException(404, f"video {video_id!r} has no media")
        path = stored_media_path(doc["media_uri"], settings.indexer.media_policy)
        if not path.is_file():
            log.warning("media missing video_id=%s path=%s", video_id, path)
            raise HTTPException(404, f"the media of video {video_id!r} is missing")
        return path

    @app.get("/videos/{video_id}/thumbnail")
    def thumbnail(request: Request, video_id: str,
                  t: float = Query(0.0, ge=0, le=24 * 3600, allow_inf_nan=False)) -> Response:
        path = _media(video_id)
        try:
            data = thumbnail_jpeg(str(path), round(t, 2), path.stat().st_mtime_ns, settings.media)
        except Exception as exc:  # any decoder failure is this file's problem, not the server's
            log.warning("thumbnail failed request_id=%s video_id=%s t=%s error=%r", request_id(request), video_id, t, exc)
            raise HTTPException(422, f"cannot decode a frame at {t}s") from exc
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/videos/{video_id}/media")
    def media(video_id: str) -> FileResponse:
        return FileResponse(_media(video_id), media_type="video/mp4")

    copy_service: list[Any] = []  # built on first use: the frame index and, for uploads, the backbone

    def copies_service() -> Any:
        if not copy_service:
            from vidsearch.plugins.copies.service import CopyService

            copy_service.append(CopyService(settings))
        return copy_service[0]

    def copies_by_id(body: CopyRequest) -> dict[str, Any]:
        from vidsearch.plugins.copies.service import as_json

        return as_json(copies_service().by_id(body.video_id, body.method, body.limit))

    def copies_by_upload(path: Path, method: str | None, limit: int) -> dict[str, Any]:
        from vidsearch.plugins.copies.service import as_json

        return as_json(copies_service().by_media(path, method, limit))

    @app.post("/copies")
    async def copies(request: Request, method: str | None = Query(None, pattern="^(tn|dp)$"),
                     limit: int = Query(10, ge=1, le=100)) -> Any:
        """Same-source search. JSON `{"video_id", "method", "limit"}` for an indexed video, or the
        raw bytes of a video or a still image (Content-Type video/* or image/*, at most
        `copies.upload_max_bytes`) with `?method=&limit=`."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            try:
                body = CopyRequest.model_validate_json(await _read_body(request, limit_json))
            except ValidationError as exc:
                return error_response(request, 422, _validation_message(exc.errors()))
            return await run_in_threadpool(copies_by_id, body)
        suffix = UPLOAD_TYPES.get(ctype)
        if suffix is None:
            return error_response(request, 415, "send JSON with a video_id, or a video/* or image/* body")
        with tempfile.TemporaryDirectory(prefix="vidsearch-copies-") as tmp:
            path = Path(tmp) / f"query{suffix}"
            await _save_body(request, path, settings.copies.upload_max_bytes)
            return await run_in_threadpool(copies_by_upload, path, method, limit)

    @app.get("/health")
    def health() -> dict[str, Any]:
        stores = {}
        for role, store in retriever.stores.items():
            try:
                store.bm25("health", Filters(), 1) if role == "lexical" else store.fetch(["__health__"])
                stores[role] = {"store": store.name, "ok": True}
            except store_unavailable_errors() as exc:
                log.warning("health: store down role=%s store=%s error=%r", role, store.name, exc)
                stores[role] = {"store": store.name, "ok": False, "error": type(exc).__name__}
        ok = all(s["ok"] for s in stores.values())
        return {"status": "ok" if ok else "degraded", "stores": stores, "model_version": retriever.encoder.version}

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    return app
