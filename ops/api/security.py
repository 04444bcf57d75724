"""The HTTP API's security edge: Host allow-list, bearer-token auth, CORS, request ids with safe
error bodies, the bind check at start-up, and what of a stored document a client may see.

Threat model: HTTP clients are untrusted, and so is any web page the user's browser visits, which
can aim requests at a server on localhost (CSRF) or rebind its own DNS name to 127.0.0.1 (DNS
rebinding). So:
- the `Host` header must name this server (Starlette's TrustedHostMiddleware): a rebound page
  sends its own name and gets a 400;
- with `retrieval.api_token` set, every endpoint but `/` and `/health` needs
  `Authorization: Bearer <token>`; without a token the server only binds to loopback unless the
  operator explicitly allows an unauthenticated remote bind;
- CORS headers only for configured origins;
- error bodies carry a class-level message and a request id; the details (exception text, paths,
  store URLs) go to the server log under that id.

`<img>` and `<video>` elements cannot send an Authorization header, so the media and thumbnail
endpoints (read-only GETs, and only those) also take the token from the `vidsearch_token` cookie
(set it with `SameSite=Strict`: other sites' pages then cannot make the browser send it) or from a
`token` query parameter (RFC 6750's URI form; uvicorn's access log gets it redacted, see
`RedactTokenFilter`). The cookie is the better of the two: a URL is copied into more places.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import socket
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidsearch.core.errors import ConfigError
from vidsearch.core.settings import Settings

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
PUBLIC_PATHS = frozenset({"/", "/health"})
TOKEN_COOKIE = "vidsearch_token"
TOKEN_PARAM = "token"
MEDIA_PATHS = re.compile(r"^/videos/[^/]+/(media|thumbnail)$")  # what <img>/<video> load
REQUEST_ID_HEADER = "X-Request-ID"


def request_id(scope_or_conn: Scope | HTTPConnection) -> str:
    scope = scope_or_conn.scope if isinstance(scope_or_conn, HTTPConnection) else scope_or_conn
    return str(scope.get("state", {}).get("request_id", "-"))


def error_response(scope_or_conn: Scope | HTTPConnection, status: int, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error body of the API: a safe message and the id to find the details in the log."""
    return JSONResponse({"error": message, "request_id": request_id(scope_or_conn)}, status_code=status,
                        headers=headers)


def _host_pattern(host: str) -> str:
    """The form a bind address takes in a Host header (IPv6 literals in brackets)."""
    try:
        return f"[{host}]" if ipaddress.ip_address(host.strip("[]")).version == 6 else host
    except ValueError:
        return host


def allowed_hosts(settings: Settings, bind_host: str | None = None) -> list[str]:
    """`retrieval.api_allowed_hosts`, or the bound host plus the loopback names. A wildcard bind
    address (0.0.0.0, ::) is no name a client uses, so it is never allowed implicitly: serving on
    all interfaces needs the public names listed."""
    cfg = settings.retrieval
    if cfg.api_allowed_hosts is not None:
        return [h.lower() for h in cfg.api_allowed_hosts]
    hosts = list(LOOPBACK_HOSTS)
    bound = (bind_host or cfg.api_host).lower()
    if bound not in ("0.0.0.0", "::", "[::]", ""):
        hosts.append(_host_pattern(bound))
    return list(dict.fromkeys(hosts))


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address (names are resolved; a name
    that does not resolve counts as remote, the safe side)."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_bind(settings: Settings, bind_host: str | None = None) -> None:
    """Refuse, at start-up, to serve without auth on an address other machines can reach."""
    cfg = settings.retrieval
    host = bind_host or cfg.api_host
    if cfg.api_token is None and not cfg.api_allow_unauthenticated_remote and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve the API without authentication on non-loopback address {host!r}: set "
            "retrieval.api_token (VIDSEARCH_RETRIEVAL__API_TOKEN), bind to 127.0.0.1, or set "
            "retrieval.api_allow_unauthenticated_remote = true if something in front of it authenticates")


def _token_of(scope: Scope) -> str | None:
    headers = Headers(scope=scope)
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scope.get("method") == "GET" and MEDIA_PATHS.match(scope["path"]):
        conn = HTTPConnection(scope)
        if conn.cookies.get(TOKEN_COOKIE):
            return unquote(conn.cookies[TOKEN_COOKIE])
        if conn.query_params.get(TOKEN_PARAM):
            return conn.query_params[TOKEN_PARAM]
    return None


class RedactTokenFilter(logging.Filter):
    """uvicorn's access log writes each path with its query string: a `token=` value in it is
    replaced before the line is written anywhere."""

    PATTERN = re.compile(r"([?&]token=)[^&\s]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.PATTERN.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_log() -> None:
    """Idempotent: one filter on uvicorn's access logger (dictConfig keeps a logger's filters)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokenFilter) for f in access.filters):
        access.addFilter(RedactTokenFilter())


class BearerAuthMiddleware:
    """Every request but the public paths must carry the token. A middleware rather than a
    per-route dependency so that a route added later is protected by default (fail closed)."""

    def __init__(self, app: ASGIApp, token: str, public: Iterable[str] = PUBLIC_PATHS) -> None:
        self.app, self.public = app, frozenset(public)
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        given = _token_of(scope)
        # constant-time comparison: the time taken must not tell how much of a guess was right
        if given is not None and hmac.compare_digest(given.encode(), self._token):
            await self.app(scope, receive, send)
            return
        log.warning("unauthorized request_id=%s path=%s token_given=%s", request_id(scope), scope["path"],
                    given is not None)
        challenge = 'Bearer realm="vidsearch"' + (', error="invalid_token"' if given is not None else "")
        await error_response(scope, 401, "missing or invalid bearer token",
                             {"WWW-Authenticate": challenge})(scope, receive, send)


class RequestContextMiddleware:
    """Outermost: gives each request an id (`X-Request-ID` on the response, `request_id` in
    error bodies and logs) and turns any exception no handler took into a generic 500 whose body
    says nothing about the cause. Hand-rolled because it is a dozen lines of plain ASGI; Starlette's
    own last-resort handler re-raises after answering (a second traceback) and has no request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, rid)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error request_id=%s method=%s path=%s", rid, scope.get("method"), scope["path"])
            if started:  # the status line is gone; all that is left is to drop the connection
                raise
            await error_response(scope, 500, "internal server error")(scope, receive, send_with_id)


def public_media_uri(uri: str | None, video_id: str, settings: Settings) -> str | None:
    """A stored `media_uri` (a local path or an internal URL) as a client sees it: the API's own
    media URL, unless `retrieval.expose_media_paths` is on."""
    if settings.retrieval.expose_media_paths or not uri:
        return uri
    return f"/videos/{quote(video_id, safe='')}/media"


def public_document(doc: dict[str, Any], video_id: str, settings: Settings) -> dict[str, Any]:
    return {**doc, "media_uri": public_media_uri(doc.get("media_uri"), video_id, settings)} if "media_uri" in doc else doc


def public_warning(warning: str) -> str:
    """A retriever warning without the exception text it quotes: the retriever writes
    "<route>: <store> unavailable (<Exception>: <message>)" and the message may hold store URLs
    or paths. The full warning is in the server log (the retriever logs each)."""
    return warning.split(" (", 1)[0]
