"""The HTTP API's security edge, with an in-memory catalogue (no stores, no models): Host
allow-list, bearer auth, CORS, body limits, weights validation, error bodies, the query-log
opt-in, media path stripping and the request-time media policy re-check."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from vidsearch.core.errors import ConfigError
from vidsearch.core.settings import Settings
from vidsearch.ops.api.app import create_app
from vidsearch.ops.api.security import RedactTokenFilter, allowed_hosts, check_bind, is_loopback
from vidsearch.plugins.retrieval.query_log import QueryLog, apply_opt_in
from vidsearch.plugins.retrieval.retriever import Retriever

pytestmark = pytest.mark.unit

SECRET_DETAIL = "/srv/internal/opensearch-data http://10.1.2.3:9200"
TOKEN = "s3cret-token-value"


class FakeEncoder:
    version = "fake-v1"

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        v = np.full(4, 0.5, np.float32)
        return v, v

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return np.full((len(texts), 4), 0.5, np.float32)


class FakeStore:
    """An in-memory catalogue; `down` makes every call fail the way a dead store does."""

    name = "fake"

    def __init__(self, docs: dict[str, dict[str, Any]], down: bool = False) -> None:
        self.docs, self.down = docs, down

    def _check(self) -> None:
        if self.down:
            raise ConnectionError(f"connection refused {SECRET_DETAIL}")

    def bm25(self, q: str, filters: Any, depth: int) -> dict[str, float]:
        self._check()
        return {vid: 1.0 / (i + 1) for i, vid in enumerate(self.docs)}

    def knn(self, field: str, vec: np.ndarray, filters: Any, depth: int) -> dict[str, float]:
        self._check()
        return {vid: 0.9 - 0.1 * i for i, vid in enumerate(self.docs)}

    def fetch(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        self._check()
        return {i: dict(self.docs[i]) for i in ids if i in self.docs}


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    (root / "a.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    (tmp_path / "outside.mp4").write_bytes(b"outside")
    return root


def _docs(root: Path) -> dict[str, dict[str, Any]]:
    return {
        "plain": {"title": "plain path", "media_uri": str(root / "a.mp4")},
        "fileuri": {"title": "file uri", "media_uri": (root / "a.mp4").as_uri()},
        "escape": {"title": "outside the root", "media_uri": str(root.parent / "outside.mp4")},
        "escapeuri": {"title": "outside, as file uri", "media_uri": (root.parent / "outside.mp4").as_uri()},
        "dotdot": {"title": "dot dot", "media_uri": str(root / ".." / "outside.mp4")},
        "remote": {"title": "remote", "media_uri": "https://cdn.example.com/v.mp4"},
        "gone": {"title": "missing file", "media_uri": str(root / "gone.mp4")},
        "nomedia": {"title": "no media"},
    }


def make_settings(tmp_path: Path, root: Path | None = None, **retrieval: Any) -> Settings:
    s = Settings()
    policy = s.indexer.media_policy.model_copy(update={"roots": (root,) if root else ()})
    return s.model_copy(update={
        "retrieval": s.retrieval.model_copy(update={"query_log": tmp_path / "q.f32", **retrieval}),
        "indexer": s.indexer.model_copy(update={"media_policy": policy}),
    })


def make_client(settings: Settings, docs: dict[str, dict[str, Any]] | None = None, down: bool = False,
                on_query: Any = None, base_url: str = "http://localhost") -> TestClient:
    store = FakeStore(docs or {"v1": {"title": "one"}}, down)
    retriever = Retriever(FakeEncoder(), {"lexical": store, "dense": store}, on_query=on_query)
    return TestClient(create_app(retriever, settings), base_url=base_url, raise_server_exceptions=False)


# --- Host allow-list (DNS rebinding) --------------------------------------------------------

@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "localhost:8080", "127.0.0.1:8080"])
def test_loopback_hosts_are_allowed_by_default(tmp_path: Path, host: str) -> None:
    r = make_client(make_settings(tmp_path)).get("/health", headers={"Host": host})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("host", ["evil.example", "rebind.attacker.test:8080", "localhost.evil.example", "10.0.0.7"])
def test_foreign_host_headers_get_400(tmp_path: Path, host: str) -> None:
    client = make_client(make_settings(tmp_path))
    for path in ("/search?q=cat", "/videos/v1", "/health", "/"):
        assert client.get(path, headers={"Host": host}).status_code == 400


def test_allowed_hosts_setting_and_wildcard(tmp_path: Path) -> None:
    listed = make_client(make_settings(tmp_path, api_allowed_hosts=("search.example.org",)))
    assert listed.get("/health", headers={"Host": "search.example.org"}).status_code == 200
    assert listed.get("/health", headers={"Host": "localhost"}).status_code == 400  # the list replaces the default
    anything = make_client(make_settings(tmp_path, api_allowed_hosts=("*",)))
    assert anything.get("/health", headers={"Host": "whatever.example"}).status_code == 200


def test_default_allow_list_adds_the_bound_host_but_never_a_wildcard_address(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    assert "10.0.0.5" in allowed_hosts(s, "10.0.0.5") and "[fe80::1]" in allowed_hosts(s, "fe80::1")
    assert "0.0.0.0" not in allowed_hosts(s, "0.0.0.0") and set(allowed_hosts(s, "::")) == {"localhost", "127.0.0.1", "[::1]"}


# --- bind check ------------------------------------------------------------------------------

def test_unauthenticated_server_refuses_a_non_loopback_bind(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "::", "192.0.2.10"):
        with pytest.raises(ConfigError, match="api_token"):
            check_bind(make_settings(tmp_path), host)
        with pytest.raises(ConfigError, match="non-loopback"):
            make_client(make_settings(tmp_path, api_host=host))
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind(make_settings(tmp_path), host)
    check_bind(make_settings(tmp_path, api_token=SecretStr(TOKEN)), "0.0.0.0")
    check_bind(make_settings(tmp_path, api_allow_unauthenticated_remote=True), "0.0.0.0")
    assert is_loopback("[::1]") and not is_loopback("no-such-host.invalid")


def test_serve_command_fails_fast_with_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from vidsearch.ops.cli.main import app

    monkeypatch.setenv("VIDSEARCH_RETRIEVAL__QUERY_LOG", str(tmp_path / "q.f32"))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        res = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    finally:  # the CLI points a log handler at the runner's stream, which closes after invoke
        root.handlers[:] = handlers
        root.setLevel(level)
    assert res.exit_code != 0
    assert "ConfigError" in res.output and "api_token" in res.output, res.output


# --- bearer auth -----------------------------------------------------------------------------

def test_token_is_required_everywhere_but_health_and_the_page(tmp_path: Path, media_root: Path) -> None:
    client = make_client(make_settings(tmp_path, media_root, api_token=SecretStr(TOKEN)), _docs(media_root))
    for path in ("/search?q=cat", "/videos/plain", "/videos/plain/media", "/videos/plain/thumbnail", "/openapi.json",
                 "/docs", "/no-such-route"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith("Bearer") and r.json()["request_id"]
    assert client.post("/search", json={"q": "cat"}).status_code == 401
    wrong = client.get("/search?q=cat", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert client.get("/search?q=cat", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert client.get("/health").status_code == 200 and client.get("/").status_code == 200
    ok = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/search?q=cat", headers=ok).status_code == 200
    assert client.post("/search", json={"q": "cat"}, headers=ok).status_code == 200
    assert client.get("/videos/plain", headers=ok).status_code == 200


def test_token_cookie_or_parameter_only_opens_media_and_thumbnails(tmp_path: Path, media_root: Path) -> None:
    client = make_client(make_settings(tmp_path, media_root, api_token=SecretStr(TOKEN)), _docs(media_root))
    assert client.get("/videos/plain/media", params={"token": TOKEN}).status_code == 200
    assert client.get("/videos/plain/media", params={"token": "wrong"}).status_code == 401
    assert client.get("/search", params={"q": "cat", "token": TOKEN}).status_code == 401
    assert client.get("/videos/plain", params={"token": TOKEN}).status_code == 401
    client.cookies.set("vidsearch_token", TOKEN)
    assert client.get("/videos/plain/media").status_code == 200
    assert client.get("/search?q=cat").status_code == 401
    assert client.get("/videos/plain").status_code == 401
    client.cookies.set("vidsearch_token", "wrong")
    assert client.get("/videos/plain/media").status_code == 401


def test_access_log_lines_never_show_the_token() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", f"/videos/a/thumbnail?t=1&token={TOKEN}&x=2", "1.1", 200), None)
    assert RedactTokenFilter().filter(record)
    line = record.getMessage()
    assert TOKEN not in line and "token=[redacted]&x=2" in line and "t=1" in line


# --- CORS ------------------------------------------------------------------------------------

def test_no_cors_headers_unless_origins_are_configured(tmp_path: Path) -> None:
    origin = {"Origin": "https://app.example.org"}
    plain = make_client(make_settings(tmp_path)).get("/search?q=cat", headers=origin)
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
    client = make_client(make_settings(tmp_path, api_cors_origins=("https://app.example.org",)))
    r = client.get("/search?q=cat", headers=origin)
    assert r.headers["access-control-allow-origin"] == "https://app.example.org"
    pre = client.options("/search", headers={**origin, "Access-Control-Request-Method": "POST",
                                             "Access-Control-Request-Headers": "authorization,content-type"})
    assert pre.status_code == 200 and "POST" in pre.headers["access-control-allow-methods"]
    other = client.get("/search?q=cat", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


# --- request validation ----------------------------------------------------------------------

def test_post_body_over_the_limit_is_413(tmp_path: Path) -> None:
    client = make_client(make_settings(tmp_path))
    big = json.dumps({"q": "cat", "filters": {"tags": ["x" * 90] * 800}})
    assert len(big) > 64 * 1024
    r = client.post("/search", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "request_id" in r.json()
    chunked = client.post("/search", content=(c for c in [big[:40000].encode(), big[40000:].encode()]),
                          headers={"Content-Type": "application/json"})  # no Content-Length: counted while read
    assert chunked.status_code == 413
    small = make_client(make_settings(tmp_path, api_max_body_bytes=1024))
    assert small.post("/search", json={"q": "cat " * 300}).status_code == 413
    assert small.post("/search", json={"q": "cat"}).status_code == 200


def test_post_needs_json_content_type(tmp_path: Path) -> None:
    r = make_client(make_settings(tmp_path)).post("/search", content='{"q": "cat"}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


@pytest.mark.parametrize(("body", "message"), [
    ('{"q": "cat", "weights": {"bm25": NaN}}', "finite"),
    ('{"q": "cat", "weights": {"bm25": Infinity}}', "finite"),
    ('{"q": "cat", "weights": {"bm25": 1e400}}', "finite"),
    ('{"q": "cat", "weights": {"bm25": -1}}', "greater than or equal to 0"),
    ('{"q": "cat", "weights": {"bm25": 101}}', "less than or equal to 100"),
    ('{"q": "cat", "weights": {"bm25_x": 1}}', "not requested"),
    ('{"q": "cat", "routes": ["bm25"], "weights": {"knn": 1}}', "not requested"),
    ('{"q": "cat", "weights": {"bm25": 0, "knn": 0}}', "at least one weight"),
    ('{"q": "cat", "weights": {"bm25": "heavy"}}', "valid number"),
    ('{"q": "cat", "colour": "red"}', "Extra inputs are not permitted"),
    ('{"q": "cat", "filters": {"colour": "red"}}', "Extra inputs are not permitted"),
    ('{"q": "cat", "filters": {"duration_min": 9, "duration_max": 1}}', "duration_min must be <= duration_max"),
    ('{"q": "cat", "filters": {"tags": [""]}}', "at least 1 character"),
    ('{"q": "cat", "k": 100000}', "less than or equal to 1000"),
    ('{"q": "cat", "page": 0}', "greater than or equal to 1"),
    ('{"q": "cat", "page": 20, "k": 100}', "page * k"),
    ("[1, 2]", "should be an object"),
    ('{"q": ', "Invalid JSON"),
])
def test_invalid_bodies_get_422_with_the_reason(tmp_path: Path, body: str, message: str) -> None:
    r = make_client(make_settings(tmp_path)).post("/search", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert message in r.json()["error"] and r.json()["request_id"]


def test_valid_weights_are_used(tmp_path: Path) -> None:
    r = make_client(make_settings(tmp_path)).post("/search", json={"q": "cat", "fusion": "convex",
                                                                  "weights": {"bm25": 0.0, "knn": 2.5}})
    assert r.status_code == 200 and r.json()["weights"] == {"bm25": 0.0, "knn": 2.5}


def test_get_unknown_parameters_and_bad_thumbnail_times(tmp_path: Path) -> None:
    client = make_client(make_settings(tmp_path))
    assert client.get("/search", params={"q": "cat", "weights": "x"}).status_code == 400
    for t in ("nan", "inf", "-1", "1e9"):
        r = client.get("/videos/v1/thumbnail", params={"t": t})
        assert r.status_code == 422 and r.json()["error"].startswith("query.t"), (t, r.text)


# --- error bodies ----------------------------------------------------------------------------

def test_store_failures_never_leak_exception_text(tmp_path: Path) -> None:
    client = make_client(make_settings(tmp_path), down=True)
    for r in (client.get("/search?q=cat"), client.post("/search", json={"q": "cat"}), client.get("/videos/v1")):
        assert r.status_code == 503, r.text
        body = r.json()
        assert set(body) == {"error", "request_id"} and body["request_id"] == r.headers["x-request-id"]
        assert "10.1.2.3" not in r.text and "/srv/internal" not in r.text and "refused" not in r.text
    health = client.get("/health").json()
    assert health["status"] == "degraded" and health["stores"]["dense"]["error"] == "ConnectionError"
    assert "10.1.2.3" not in json.dumps(health)


def test_unexpected_errors_are_a_generic_500_with_a_request_id(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(FakeStore):
        def bm25(self, q: str, filters: Any, depth: int) -> dict[str, float]:
            raise RuntimeError(f"bug with {SECRET_DETAIL}")

    retriever = Retriever(FakeEncoder(), {"lexical": Broken({}), "dense": FakeStore({"v1": {}})})
    client = TestClient(create_app(retriever, make_settings(tmp_path)), base_url="http://localhost",
                        raise_server_exceptions=False)
    with caplog.at_level("ERROR"):
        r = client.get("/search?q=cat&routes=bm25")
    assert r.status_code == 500 and r.json() == {"error": "internal server error", "request_id": r.headers["x-request-id"]}
    assert "/srv/internal" not in r.text and "RuntimeError" not in r.text
    assert any(r.headers["x-request-id"] in rec.getMessage() for rec in caplog.records)  # details: server-side


def test_degraded_warnings_name_the_route_and_store_only(tmp_path: Path) -> None:
    lexical = FakeStore({"v1": {"title": "one"}}, down=True)
    dense = FakeStore({"v1": {"title": "one"}})
    retriever = Retriever(FakeEncoder(), {"lexical": lexical, "dense": dense})
    r = TestClient(create_app(retriever, make_settings(tmp_path)), base_url="http://localhost").get("/search?q=cat")
    assert r.status_code == 200 and r.json()["degraded"] is True
    assert r.json()["warnings"] == ["bm25: fake unavailable"] and "10.1.2.3" not in r.text


def test_not_found_and_method_errors_use_the_same_body(tmp_path: Path) -> None:
    client = make_client(make_settings(tmp_path))
    for r in (client.get("/videos/nope"), client.get("/nowhere"), client.delete("/search")):
        assert r.status_code in (404, 405) and set(r.json()) == {"error", "request_id"}


# --- query log opt-in ------------------------------------------------------------------------

def test_queries_are_logged_only_when_opted_in(tmp_path: Path) -> None:
    log = QueryLog(tmp_path / "q.f32", dim=4)
    off = make_client(make_settings(tmp_path), on_query=log.append)
    off.get("/search?q=cat")
    off.post("/search", json={"q": "dog"})
    assert len(log.tail(10)) == 0
    on = make_client(make_settings(tmp_path, log_queries=True), on_query=log.append)
    on.get("/search?q=cat")
    on.post("/search", json={"q": "dog"})
    assert len(log.tail(10)) == 2


def test_apply_opt_in_leaves_the_callers_retriever_alone(tmp_path: Path) -> None:
    calls: list[np.ndarray] = []
    store = FakeStore({"v1": {}})
    retriever = Retriever(FakeEncoder(), {"lexical": store, "dense": store}, on_query=calls.append)
    gated = apply_opt_in(retriever, make_settings(tmp_path))
    assert gated.on_query is None and retriever.on_query is not None and gated.stores is retriever.stores
    assert apply_opt_in(retriever, make_settings(tmp_path, log_queries=True)) is retriever


# --- media paths -----------------------------------------------------------------------------

def test_hits_and_documents_carry_the_api_media_url_not_the_path(tmp_path: Path, media_root: Path) -> None:
    client = make_client(make_settings(tmp_path, media_root), _docs(media_root))
    hits = client.get("/search", params={"q": "cat", "k": 20}).json()["hits"]
    by_id = {h["video_id"]: h["media_uri"] for h in hits}
    assert by_id["plain"] == "/videos/plain/media" and by_id["remote"] == "/videos/remote/media"
    assert by_id["nomedia"] is None and str(media_root) not in json.dumps(hits)
    assert client.get("/videos/fileuri").json()["media_uri"] == "/videos/fileuri/media"
    exposed = make_client(make_settings(tmp_path, media_root, expose_media_paths=True), _docs(media_root))
    assert exposed.get("/videos/plain").json()["media_uri"] == str(media_root / "a.mp4")


def test_media_is_rechecked_against_the_policy_at_request_time(tmp_path: Path, media_root: Path) -> None:
    client = make_client(make_settings(tmp_path, media_root), _docs(media_root))
    for vid in ("plain", "fileuri"):  # a file:// URI behaves exactly like the plain path
        r = client.get(f"/videos/{vid}/media")
        assert r.status_code == 200 and r.content.startswith(b"\x00\x00\x00\x18ftyp")
    for vid in ("escape", "escapeuri", "dotdot"):
        r = client.get(f"/videos/{vid}/media")
        assert r.status_code == 403, (vid, r.text)
        assert str(tmp_path) not in r.text and "media policy" in r.json()["error"]
        assert client.get(f"/videos/{vid}/thumbnail").status_code == 403
    remote = client.get("/videos/remote/media")
    assert remote.status_code == 404 and "remote" in remote.json()["error"]
    assert client.get("/videos/gone/media").status_code == 404 and str(media_root) not in client.get("/videos/gone/media").text
    assert client.get("/videos/nomedia/media").status_code == 404
    # the roots are read when the request comes, not when the video was indexed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = make_client(make_settings(tmp_path, elsewhere), _docs(media_root))
    assert moved.get("/videos/plain/media").status_code == 403
    assert make_client(make_settings(tmp_path, None), _docs(media_root)).get("/videos/plain/media").status_code == 403


def test_responses_carry_a_request_id(tmp_path: Path) -> None:
    client = make_client(make_settings(tmp_path))
    a, b = client.get("/health"), client.get("/health")
    assert len(a.headers["x-request-id"]) == 32 and a.headers["x-request-id"] != b.headers["x-request-id"]
