"""The HTTP API and the results page, against the real stores; the page in Debian's headless Chromium.
Also the security edge where it needs the real catalogue: media paths stripped from real hits, the
real clip streamed only inside the media roots, token auth and the query-log opt-in on a real search."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.cleanup import fresh_name
from tests.integration.retrieval_helpers import drop_catalogue, load, scoped, serve_app
from vidsearch.core.settings import Settings
from vidsearch.ops.api.app import create_app
from vidsearch.ops.datasets.clips import real_clips
from vidsearch.plugins.retrieval.build import build_retriever
from vidsearch.plugins.retrieval.query_log import QueryLog

pytestmark = [pytest.mark.integration, pytest.mark.models]
LOCAL = "http://127.0.0.1"  # a Host the default allow-list accepts (TestClient's own is "testserver")


@pytest.fixture(scope="module")
def api_settings(stack: object, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Path]]:
    from vidsearch.encoders.text import MiniLMEncoder

    clip = next(c.path for c in real_clips(settings.stack.cache_dir) if c.path.name == "bigbuckbunny.mp4")
    s = scoped(settings, fresh_name("api"), query_log=tmp_path_factory.mktemp("qlog") / "q.f32")
    policy = s.indexer.media_policy.model_copy(update={"roots": (clip.parent,)})
    s = s.model_copy(update={"indexer": s.indexer.model_copy(update={"media_policy": policy})})
    text = MiniLMEncoder()
    try:
        load(s, text, media=clip)
        yield s, clip
    finally:
        drop_catalogue(s)


def _with(s: Settings, **retrieval: object) -> Settings:
    return s.model_copy(update={"retrieval": s.retrieval.model_copy(update=retrieval)})


@pytest.fixture(scope="module")
def client(api_settings: tuple[Settings, Path]) -> TestClient:
    s, _ = api_settings
    return TestClient(create_app(build_retriever(s), s), base_url=LOCAL)


def test_search_health_video_and_openapi(client: TestClient) -> None:
    r = client.get("/search", params={"q": "fire truck", "k": 3, "explain": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["hits"][0]["video_id"] in {"fire-truck", "parade"} and body["hits"][0]["explain"]
    assert body["degraded"] is False
    post = client.post("/search", json={"q": "fire truck", "k": 3, "routes": ["knn"], "fusion": "rrf"})
    assert post.status_code == 200 and post.json()["weights"] == {"knn": 1.0}
    assert client.get("/health").json()["status"] == "ok"
    video = client.get("/videos/parade").json()
    assert video["title"] == "Fire truck parade downtown" and len(video["keyframe_times"]) == 3
    assert client.get("/videos/nope").status_code == 404
    assert "/search" in client.get("/openapi.json").json()["paths"]


def test_thumbnails_are_real_jpegs_and_media_outside_roots_is_refused(client: TestClient, api_settings) -> None:  # noqa: ANN001
    r = client.get("/videos/kitten/thumbnail", params={"t": 1.0})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    s, clip = api_settings
    strict = s.model_copy(update={"indexer": s.indexer.model_copy(update={"media_policy": s.indexer.media_policy.model_copy(
        update={"roots": (Path("/nonexistent-root"),)})})})
    strict_client = TestClient(create_app(build_retriever(strict), strict), base_url=LOCAL)
    for path in ("/videos/kitten/thumbnail", "/videos/kitten/media"):
        refused = strict_client.get(path)
        assert refused.status_code == 403 and "media policy" in refused.json()["error"]
        assert str(clip.parent) not in refused.text and refused.json()["request_id"] == refused.headers["x-request-id"]


def test_hits_point_at_the_api_media_url_which_streams_the_real_clip(client: TestClient, api_settings) -> None:  # noqa: ANN001
    s, clip = api_settings
    r = client.get("/search", params={"q": "a kitten playing", "k": 5})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert hits and all(h["media_uri"] == f"/videos/{h['video_id']}/media" for h in hits)
    assert str(clip.parent) not in r.text
    assert client.get("/videos/kitten").json()["media_uri"] == "/videos/kitten/media"
    media = client.get(hits[0]["media_uri"])
    assert media.status_code == 200 and media.content == clip.read_bytes()
    exposed = _with(s, expose_media_paths=True)
    raw = TestClient(create_app(build_retriever(exposed), exposed), base_url=LOCAL).get("/videos/kitten").json()
    assert raw["media_uri"] == str(clip)


def test_token_guards_a_real_search_and_a_foreign_host_is_refused(api_settings) -> None:  # noqa: ANN001
    s, _ = api_settings
    guarded = _with(s, api_token=SecretStr("integration-token"))
    app = TestClient(create_app(build_retriever(guarded), guarded), base_url=LOCAL)
    assert app.get("/search", params={"q": "fire truck"}).status_code == 401
    ok = app.get("/search", params={"q": "fire truck"}, headers={"Authorization": "Bearer integration-token"})
    assert ok.status_code == 200 and ok.json()["hits"]
    assert app.get("/health").json()["status"] == "ok"  # public: load balancers probe it
    rebound = app.get("/search", params={"q": "fire truck"}, headers={"Host": "attacker.example",
                                                                      "Authorization": "Bearer integration-token"})
    assert rebound.status_code == 400


def test_real_queries_reach_the_query_log_only_when_opted_in(api_settings) -> None:  # noqa: ANN001
    s, _ = api_settings
    log = QueryLog(s.retrieval.query_log)
    before = len(log.tail(10_000))
    default = TestClient(create_app(build_retriever(s), s), base_url=LOCAL)
    assert default.get("/search", params={"q": "a dog in a park"}).status_code == 200
    assert len(log.tail(10_000)) == before
    opted = _with(s, log_queries=True)
    logging_app = TestClient(create_app(build_retriever(opted), opted), base_url=LOCAL)
    assert logging_app.post("/search", json={"q": "a dog in a park"}).status_code == 200
    rows = log.tail(10_000)
    assert len(rows) == before + 1 and np.isfinite(rows[-1]).all() and float(np.abs(rows[-1]).sum()) > 0


@pytest.mark.parametrize(("params", "status", "message"), [
    ({"q": ""}, 422, "at least 1 character"),
    ({"q": "x" * 10_000}, 422, "at most 1000 characters"),
    ({"q": "!!! ??? ..."}, 422, "no letters or digits"),
    ({"q": "cat", "colour": "red"}, 400, "unknown parameter"),
    ({"q": "cat", "k": 5000}, 422, "less than or equal to 1000"),
    ({"q": "cat", "duration_min": "long"}, 422, "duration_min"),
    ({"q": "cat", "duration_min": "30", "duration_max": "5"}, 422, "duration_min must be <= duration_max"),
    ({"q": "cat", "routes": "bm25,sql"}, 422, "unknown routes"),
])
def test_bad_queries_get_a_clear_4xx(client: TestClient, params: dict, status: int, message: str) -> None:
    r = client.get("/search", params=params)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_stores_down_degrade_or_503_never_500(api_settings) -> None:  # noqa: ANN001
    s, _ = api_settings
    os_down = s.model_copy(update={"opensearch": s.opensearch.model_copy(update={"url": "http://127.0.0.1:1"})})
    r = TestClient(create_app(build_retriever(os_down), os_down), base_url=LOCAL).get("/search", params={"q": "fire truck"})
    assert r.status_code == 200 and r.json()["degraded"] is True and r.json()["hits"]
    assert "127.0.0.1:1" not in r.text  # warnings name the route and store, not the exception text
    both = os_down.model_copy(update={"milvus": s.milvus.model_copy(update={"uri": "http://127.0.0.1:1"})})
    app = TestClient(create_app(build_retriever(both), both), base_url=LOCAL)
    r = app.get("/search", params={"q": "fire truck"})
    assert r.status_code == 503 and "no route could be served" in r.json()["error"]
    assert "127.0.0.1:1" not in r.text and set(r.json()) == {"error", "request_id"}
    health = app.get("/health")
    assert health.json()["status"] == "degraded" and "127.0.0.1:1" not in health.text


@pytest.fixture(scope="module")
def server(api_settings) -> Iterator[str]:  # noqa: ANN001
    s, _ = api_settings
    with serve_app(s) as url:
        yield url


def test_results_page_in_headless_chromium(server: str) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"  # Debian's browser; nothing is downloaded
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions", "--no-first-run"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.get(server + "/")
        box = driver.find_element(By.ID, "q")
        box.send_keys("a kitten playing")
        driver.find_element(By.ID, "go").click()
        wait = WebDriverWait(driver, 30)
        wait.until(ec.presence_of_all_elements_located((By.CSS_SELECTOR, ".hit")))
        hits = driver.find_elements(By.CSS_SELECTOR, ".hit")
        assert hits[0].get_attribute("data-id") in {"kitten", "chaton"}
        assert "kitten" in driver.find_element(By.ID, "results").text.lower() or "chaton" in driver.find_element(By.ID, "results").text.lower()
        wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('img.thumb')].every(i => i.complete && i.naturalWidth > 0)"))
        widths = driver.execute_script("return [...document.querySelectorAll('img.thumb')].map(i => i.naturalWidth)")
        assert widths and all(w > 0 for w in widths)
        moment = hits[0].find_element(By.CSS_SELECTOR, "a.moment")
        assert "▶" in moment.text
        moment.click()
        wait.until(lambda d: "#t=" in (d.find_element(By.ID, "player").get_attribute("src") or ""))
    finally:
        driver.quit()
