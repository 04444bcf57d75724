"""The results page (`/`) in Debian's headless Chromium, at desktop and phone widths, against the
real stores: hits with title, duration and decoded thumbnails, a moment that seeks the player,
why each hit matched, highlighted query words, pagination, filters, helpful empty states, and a
hostile title that stays text. Screenshots go to $VIDSEARCH_ARTIFACTS (CI keeps them)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cleanup import fresh_name
from tests.integration.retrieval_helpers import (
    CATALOGUE,
    FILLER,
    drop_catalogue,
    features,
    scoped,
    serve_app,
)
from vidsearch.connector.app import make_writer
from vidsearch.connector.bulk import Item, write_items
from vidsearch.core.settings import Settings
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.speech import Segment
from vidsearch.ops.datasets.clips import real_clips

pytestmark = [pytest.mark.integration, pytest.mark.models]

CLIP_END = 4.5  # seconds: bigbuckbunny.mp4 is 5.3 s long
XSS_TITLE = "<img src=x onerror=alert(1)>"
XSS_SPEECH = "<script>window.__pwned = 1</script> a goldfish swimming in an aquarium"
ARTIFACTS = Path(os.environ.get("VIDSEARCH_ARTIFACTS") or Path(__file__).resolve().parents[2] / ".artifacts" / "screenshots")
# Half the catalogue published in 2023, half in 2024, for the published-range filter.
PUBLISHED = {vid: datetime(2023 + i % 2, 6, 1, tzinfo=timezone.utc) for i, vid in enumerate(CATALOGUE)}


def _in_clip(f: VideoFeatures) -> VideoFeatures:
    """Every video plays the same 5.3 s clip, whatever duration its metadata says: keep the
    keyframes (thumbnail times) inside the clip so every thumbnail is a real frame."""
    f.keyframe_times = np.minimum(f.keyframe_times, CLIP_END).astype(np.float32)
    return f


def _hostile(text, media: Path) -> VideoFeatures:  # noqa: ANN001 - TextEncoder
    """A video an untrusted producer sent: markup in its title and in its transcript."""
    frames = text.encode([FILLER[0], "a goldfish swimming in a glass aquarium", FILLER[1]])
    meta, trans = text.encode([XSS_TITLE, XSS_SPEECH])
    return VideoFeatures(video_id="hostile", source=str(media), duration_s=5.0, title=XSS_TITLE, tags=["pets"],
                         transcript=[Segment(start=0.5, end=3.0, text=XSS_SPEECH)],
                         keyframe_times=np.array([0.0, 2.5, 4.0], np.float32), frame_bridge=frames.astype(np.float32),
                         frame_features=np.zeros((3, 1280), np.float32), text_metadata=meta, text_transcript=trans,
                         has_audio=True)


@pytest.fixture(scope="module")
def page_settings(stack: object, settings: Settings) -> Iterator[Settings]:
    from vidsearch.encoders.text import MiniLMEncoder
    from vidsearch.plugins.opensearch.client import make_client

    clip = next(c.path for c in real_clips(settings.stack.cache_dir) if c.path.name == "bigbuckbunny.mp4")
    s = scoped(settings, fresh_name("page"))
    policy = s.indexer.media_policy.model_copy(update={"roots": (clip.parent,)})
    s = s.model_copy(update={"indexer": s.indexer.model_copy(update={"media_policy": policy})})
    text = MiniLMEncoder()
    items = [Item(_in_clip(features(text, vid, clip)), language=CATALOGUE[vid][2], tags=CATALOGUE[vid][3],
                  published_at=PUBLISHED[vid]) for vid in CATALOGUE]
    items.append(Item(_hostile(text, clip), language="en", tags=["pets"], published_at=PUBLISHED["kitten"]))
    try:
        write_items(make_writer(s, ("milvus", "opensearch"), frame_index=False), items)
        make_client(s.opensearch).indices.refresh(index=s.indexer.index_prefix)
        yield s
    finally:
        drop_catalogue(s)


@pytest.fixture(scope="module")
def server(page_settings: Settings) -> Iterator[str]:
    with serve_app(page_settings) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"  # Debian's browser; nothing is downloaded
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
                 "--disable-background-networking", "--disable-extensions", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _js(driver: Any, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def _wait(driver: Any, predicate: Any, timeout: float = 30) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(predicate)


def _search(driver: Any, query: str) -> list[dict[str, Any]]:
    """Type a query, submit, and wait until this search (not the previous one) has rendered."""
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(query)
    return _submit(driver, lambda: driver.find_element(By.ID, "go").click())


def _submit(driver: Any, action: Any) -> list[dict[str, Any]]:
    """Run `action` and wait until the page has rendered the search it starts (body[data-shown])."""
    before = _js(driver, "return document.body.dataset.shown || ''")
    action()
    _wait(driver, lambda d: _js(d, "return document.body.dataset.shown || ''") != before)
    return _hits(driver)


def _hits(driver: Any) -> list[dict[str, Any]]:
    return _js(driver, """return [...document.querySelectorAll('#results .hit')].map(h => ({
        id: h.dataset.id, rank: h.querySelector('.rank').textContent,
        title: h.querySelector('.title-text').textContent,
        duration: (h.querySelector('.duration') || {}).textContent || '',
        language: [...h.querySelectorAll('.meta .chip')].map(c => c.textContent).find(t => !t.startsWith('#')) || null}))""")


def _shot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    assert path.stat().st_size > 5000  # a real render, not a blank frame
    return path


def _open_filters(driver: Any) -> None:
    """The filters fold away on phones; open them as a user would."""
    from selenium.webdriver.common.by import By

    if not driver.find_element(By.ID, "filters-panel").get_attribute("open"):
        summary = driver.find_element(By.CSS_SELECTOR, "#filters-panel > summary")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", summary)
        summary.click()


def _thumbnails_decoded(driver: Any) -> list[int]:
    _wait(driver, lambda d: _js(d, "return [...document.querySelectorAll('img.thumb')].every(i => i.complete)"))
    return _js(driver, "return [...document.querySelectorAll('img.thumb')].map(i => i.naturalWidth)")


@pytest.mark.parametrize(("width", "height", "label"), [(1280, 900, "desktop"), (390, 844, "phone")])
def test_results_page(server: str, browser: Any, width: int, height: int, label: str) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    d = browser
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    d.get(server + "/")
    assert _js(d, "return window.innerWidth") == width

    # Hits: title, duration, decoded thumbnails, and the page fits the width (no sideways scroll).
    hits = _search(d, "a kitten playing")
    assert hits and hits[0]["id"] in {"kitten", "chaton"}, hits
    assert all(h["title"].strip() and re.fullmatch(r"\d+:\d{2}", h["duration"]) for h in hits), hits
    widths = _thumbnails_decoded(d)
    assert len(widths) == len(hits) and all(w > 0 for w in widths), widths
    assert _js(d, "return document.documentElement.scrollWidth") <= width
    assert "q=a+kitten+playing" in d.current_url and not d.find_elements(By.ID, "empty")

    # Why: the first hit names the route(s) that found it; query words are marked in its text.
    why = d.find_element(By.CSS_SELECTOR, "#results .hit .why").text
    assert re.search(r"BM25|k-NN", why), why
    _wait(d, lambda dr: _js(dr, "return document.querySelectorAll('#results .hit mark').length > 0"))
    marked = _js(d, "return [...document.querySelectorAll('#results .hit mark')].map(m => m.textContent.toLowerCase())")
    assert marked and set(marked) <= {"kitten", "kittens", "play", "playing", "plays"}, marked
    _shot(d, f"{label}-results")

    # The moment opens the player at its start: #t=start,end in the src, currentTime inside it.
    moment = d.find_element(By.CSS_SELECTOR, "#results .hit a.moment")
    start, end = float(moment.get_attribute("data-start")), float(moment.get_attribute("data-end"))
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", moment)
    moment.click()
    _wait(d, lambda dr: _js(dr, "const p = document.getElementById('player'); return p.isConnected && p.readyState >= 2"))
    src = d.find_element(By.ID, "player").get_attribute("src")
    assert f"#t={start:g},{end:g}" in src or f"#t={start},{end}" in src, src
    t = _js(d, "return document.getElementById('player').currentTime")
    assert start - 0.05 <= t <= end + 0.5, (t, start, end)
    assert d.find_element(By.CSS_SELECTOR, "#results .hit:first-child .player-slot #player")
    _shot(d, f"{label}-player")

    # Pagination: 5 a page; "Next" shows ranks 6.. with a different first hit.
    assert bool(d.find_element(By.ID, "filters-panel").get_attribute("open")) == (label == "desktop")
    first = _submit(d, lambda: _js(d, "const k = document.getElementById('f-k'); k.value = '5';"
                                      "k.dispatchEvent(new Event('change'));"))
    assert len(first) == 5 and first[0]["rank"] == "1."
    d.execute_script("arguments[0].scrollIntoView()", d.find_element(By.ID, "next"))
    second = _submit(d, lambda: d.find_element(By.ID, "next").click())
    assert second and second[0]["rank"] == "6." and second[0]["id"] != first[0]["id"]
    assert not {h["id"] for h in second} & {h["id"] for h in first}
    assert "page=2" in d.current_url
    d.back()  # the browser's history walks the pages too
    _wait(d, lambda dr: _hits(dr) and _hits(dr)[0]["rank"] == "1.")

    # A filter narrows: language fr leaves only the French videos.
    everything = _search(d, "an animal or a vehicle")
    _open_filters(d)
    lang = d.find_element(By.ID, "f-language")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", lang)
    lang.send_keys("fr")
    french = _submit(d, lambda: d.find_element(By.ID, "apply-filters").click())
    assert french and all(h["language"] == "fr" for h in french), french
    assert {h["id"] for h in french} <= {"chaton", "voiture", "snow"} and len(french) < len(everything)
    assert "language=fr" in d.current_url
    assert bool(d.find_element(By.ID, "filters-panel").get_attribute("open")) == (label == "desktop")  # folded on phones
    if label == "desktop":  # and a published range: only the 2024 videos
        recent = _submit(d, lambda: _js(d, "const f = document.getElementById('f-published-from'); f.value = '2024-01-01';"
                                           "f.dispatchEvent(new Event('change'));"))
        assert recent and {h["id"] for h in recent} <= {v for v, p in PUBLISHED.items() if p.year == 2024}

    # Empty states: filters that exclude everything suggest removing them (and that works)...
    _open_filters(d)
    lang.clear()
    lang.send_keys("xx")
    assert not _submit(d, lambda: d.find_element(By.ID, "apply-filters").click())
    assert "No videos match" in d.find_element(By.ID, "empty").text
    assert _submit(d, lambda: d.find_element(By.ID, "remove-filters").click())
    assert d.find_element(By.ID, "f-language").get_attribute("value") == ""
    # ...and a nonsense query (which k-NN still answers) says that no video contains its words,
    # with suggestions, above the nearest videos by meaning.
    nearest = _search(d, "qzxv wplk blorft")
    empty = d.find_element(By.ID, "empty")
    assert "No video contains" in empty.text and d.find_element(By.ID, "try-shorter").text == "Search “qzxv wplk”"
    assert nearest and not _js(d, "return document.querySelectorAll('#results .hit mark').length")
    _shot(d, f"{label}-empty")
    assert _search(d, "guitar") and not d.find_elements(By.ID, "empty")  # a word that matches: no notice

    # Untrusted text stays text: the hostile title and transcript create no element and run nothing.
    hostile = _search(d, "a goldfish swimming in an aquarium")
    assert hostile[0]["id"] == "hostile" and hostile[0]["title"] == XSS_TITLE
    _wait(d, lambda dr: _js(dr, "const s = document.querySelector('.hit[data-id=hostile] .snippet');"
                                "return s && !s.hidden"))
    snippet = d.find_element(By.CSS_SELECTOR, ".hit[data-id=hostile] .snippet").text
    assert "<script>" in snippet and "goldfish" in snippet
    assert _js(d, "return document.querySelectorAll('img[src=\"x\"], [onerror], #results script').length") == 0
    assert _js(d, "return window.__pwned === undefined")
    with pytest.raises(NoAlertPresentException):
        _ = d.switch_to.alert.text
    assert all(w > 0 for w in _thumbnails_decoded(d))
    _shot(d, f"{label}-hostile")


def _desktop(d: Any, url: str) -> None:
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    d.get(url)


def test_stores_down_say_so_and_what_to_run(page_settings: Settings, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    down = page_settings.model_copy(update={
        "opensearch": page_settings.opensearch.model_copy(update={"url": "http://127.0.0.1:1"}),
        "milvus": page_settings.milvus.model_copy(update={"uri": "http://127.0.0.1:1"})})
    with serve_app(down) as url:
        _desktop(browser, url + "/?q=a+kitten+playing")  # a shared link: the page searches on load
        box = _wait(browser, lambda dr: dr.find_elements(By.ID, "unavailable"))[0]
        assert "The search stores are unavailable" in box.text and "vidsearch stack up" in box.text
        assert "down" in box.find_element(By.CSS_SELECTOR, "ul.stores").text
        assert not _hits(browser)
        _shot(browser, "desktop-stores-down")


def test_missing_catalogue_says_how_to_create_it(page_settings: Settings, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    nothing = scoped(page_settings, fresh_name("none"))  # stores up, no index or collection
    with serve_app(nothing) as url:
        _desktop(browser, url + "/?q=a+kitten")
        box = _wait(browser, lambda dr: dr.find_elements(By.ID, "unavailable"))[0]
        assert "has not been set up" in box.text and "vidsearch plugins install" in box.text, box.text


def test_token_pasted_once_authorizes_search_and_media(page_settings: Settings, browser: Any) -> None:
    from pydantic import SecretStr
    from selenium.webdriver.common.by import By

    secret = f"tok-{uuid.uuid4().hex}"
    guarded = page_settings.model_copy(update={"retrieval": page_settings.retrieval.model_copy(update={"api_token": SecretStr(secret)})})
    with serve_app(guarded) as url:
        _desktop(browser, url + "/")
        assert not _search(browser, "a kitten playing")
        box = browser.find_element(By.ID, "token-box")
        assert box.is_displayed()
        browser.find_element(By.ID, "token").send_keys(secret)
        hits = _submit(browser, lambda: browser.find_element(By.ID, "token-save").click())
        assert hits and hits[0]["id"] in {"kitten", "chaton"} and not box.is_displayed()
        widths = _thumbnails_decoded(browser)  # <img> sends the cookie, not the header
        assert widths and all(w > 0 for w in widths), widths
        assert _js(browser, "return sessionStorage.getItem('vidsearch.token')") == secret
        browser.refresh()  # the same tab keeps it: no second paste
        _wait(browser, lambda dr: _js(dr, "return document.body.dataset.shown") and _hits(dr))
        assert _search(browser, "guitar")[0]["id"] == "guitar"
