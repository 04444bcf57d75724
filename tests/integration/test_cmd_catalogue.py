"""`vidsearch plugins install`, `ncl recompute`, `search`, `serve` and the API's media endpoint,
black-box against the real stack: each command is run as a user runs it (the CLI, or the server
as a subprocess) on a throwaway catalogue, and what it did is read back from the engines."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.cleanup import fresh_name
from tests.integration.command_helpers import (
    MODEL_VERSION,
    VIDSEARCH,
    Scope,
    cli,
    cli_json,
    describe,
    make_scope,
    milvus,
    milvus_alias_target,
    milvus_rows,
    os_alias_targets,
    os_client,
    os_docs,
    scoped_resources,
    synthetic_features,
    wait_for,
)
from tests.integration.retrieval_helpers import CATALOGUE, load, serve_app
from vidsearch.core.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.models]
CLIP = Path("/usr/share/doc/opencv-doc/examples/data/tree.avi")  # a real video Debian ships (opencv-doc)
HOSTILE = ("evil-abs", "evil-dots", "evil-link")  # documents whose stored media path leaves the media root


@pytest.fixture(scope="module")
def cat(stack: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Scope, Path]]:
    """The retrieval tests' 12-video catalogue (real MiniLM vectors, media = a copy of a real clip
    inside the media root), plus three documents whose media path points outside the root."""
    from vidsearch.connector.app import make_writer
    from vidsearch.connector.bulk import Item, write_items
    from vidsearch.encoders.text import MiniLMEncoder

    tmp = tmp_path_factory.mktemp("cmd_cat")
    root = tmp / "media"
    root.mkdir()
    clip = root / "tree.avi"
    shutil.copyfile(CLIP, clip)
    (root / "link.avi").symlink_to("/etc/passwd")
    name = fresh_name("cmd_cat")
    scope = make_scope(name, tmp, VIDSEARCH_INDEXER__MEDIA_POLICY__ROOTS=json.dumps([str(root)]))
    with scoped_resources(scope.settings, name):
        load(scope.settings, MiniLMEncoder(), media=clip)
        rng = np.random.default_rng(5)
        hostile = {"evil-abs": "/etc/passwd", "evil-dots": f"{root}/../../../../etc/passwd", "evil-link": str(root / "link.avi")}
        write_items(make_writer(scope.settings), [Item(synthetic_features(vid, rng, f"hostile {vid}"), media_uri=uri)
                                                   for vid, uri in hostile.items()])
        yield scope, clip


# -- plugins install ------------------------------------------------------------------------------

def test_plugins_install_creates_template_index_collection_and_aliases_once(stack: object, unique_name: str,
                                                                           tmp_path: Path) -> None:
    from opensearchpy.exceptions import NotFoundError

    scope = make_scope(unique_name, tmp_path)
    s = scope.settings
    prefix, coll_prefix = s.indexer.index_prefix, s.indexer.collection_prefix
    client = os_client(s)
    # `unique_name` drops whatever the name produced on the stack after the test
    with pytest.raises(NotFoundError):
        client.indices.get_index_template(name=f"{prefix}-template")
    assert os_alias_targets(s) == [] and milvus_alias_target(s) is None

    first = cli_json(scope.env, "plugins", "install", "--json")
    assert set(first) == {"opensearch", "milvus"}, first
    index = f"{prefix}-{MODEL_VERSION}"
    assert first["opensearch"]["template"] == "created"
    assert first["opensearch"]["index"] == index and first["opensearch"]["alias"] == {prefix: [index]}
    collection = f"{coll_prefix}_{MODEL_VERSION}"
    assert first["milvus"]["collection"] == collection and first["milvus"]["alias"] == {coll_prefix: collection}
    assert first["milvus"]["created"] is True

    second = cli_json(scope.env, "plugins", "install", "--json")
    assert second["opensearch"]["template"] == "unchanged", second
    assert all(v == "unchanged" or v.startswith("skipped") for v in second["opensearch"]["pipelines"].values()), second
    assert second["opensearch"]["alias"] == {prefix: [index]}
    assert second["milvus"]["created"] is False and second["milvus"]["alias"] == {coll_prefix: collection}

    # what the report claims is really there
    template = client.indices.get_index_template(name=f"{prefix}-template")["index_templates"][0]["index_template"]
    assert template["index_patterns"] == [f"{prefix}-*"]
    assert "vec_ncl" in template["template"]["mappings"]["properties"]
    assert os_alias_targets(s) == [index] and client.count(index=prefix)["count"] == 0
    assert milvus_alias_target(s) == collection
    mv = milvus(s)
    try:
        fields = {f["name"] for f in mv.describe_collection(collection)["fields"]}
    finally:
        mv.close()
    assert {"id", "vec_fused", "vec_ncl"} <= fields
    pipelines = client.transport.perform_request("GET", "/_search/pipeline/vidsearch-overfetch")
    assert "vidsearch-overfetch" in pipelines


# -- ncl recompute --------------------------------------------------------------------------------

def _ncl_vectors(s: Settings) -> tuple[dict[str, dict], dict[str, dict]]:
    [index] = os_alias_targets(s)
    return (os_docs(s, index, ["vec_fused", "vec_ncl"]),
            milvus_rows(s, milvus_alias_target(s) or "", ["vec_fused", "vec_ncl"]))


def test_ncl_recompute_writes_biases_into_both_stores(cat: tuple[Scope, Path]) -> None:
    from vidsearch.encoders.text import MiniLMEncoder
    from vidsearch.plugins.retrieval.query_log import QueryLog, log_path

    scope, _ = cat
    s = scope.settings
    os_before, mv_before = _ncl_vectors(s)
    ids = set(CATALOGUE) | set(HOSTILE)
    assert set(os_before) == set(mv_before) == ids
    for doc in [*os_before.values(), *mv_before.values()]:  # indexed with no NCL state yet: [fused; 0]
        assert doc["vec_ncl"][-1] == 0.0 and np.allclose(doc["vec_ncl"][:-1], doc["vec_fused"], atol=1e-6)

    # NCL's bank: the query log (60 real queries), in this scope's state folder
    queries = [f"{shows} ({i})" for i, (_, shows, *_rest) in enumerate(CATALOGUE.values())] * 5
    log = QueryLog(log_path(s))
    for vec in MiniLMEncoder().encode(queries, kind="query"):
        log.append(vec)

    report = cli_json(scope.env, "ncl", "recompute", "--json")
    assert report["bank_source"] == "query_log" and report["bank"] == len(queries)
    assert report["videos"] == len(ids) and report["updated"] == {"milvus": len(ids), "opensearch": len(ids)}, report
    assert report["tau"] == s.retrieval.ncl_tau and report["beta_min"] < report["beta_max"]
    assert (s.stack.state_dir / "ncl" / f"{s.indexer.index_prefix}.npz").is_file()

    os_after, mv_after = _ncl_vectors(s)
    biases = {}
    for vid in ids:
        for doc in (os_after[vid], mv_after[vid]):
            assert np.allclose(doc["vec_ncl"][:-1], doc["vec_fused"], atol=1e-5), vid  # the fused part is kept
        biases[vid] = os_after[vid]["vec_ncl"][-1]
        assert mv_after[vid]["vec_ncl"][-1] == pytest.approx(biases[vid], abs=1e-5), vid  # the same bias in both stores
    assert sum(b != 0.0 for b in biases.values()) >= len(ids) - 1, biases  # biases written, not [fused; 0]
    spread = np.array(list(biases.values())) / s.retrieval.ncl_tau
    assert spread.min() == pytest.approx(report["beta_min"], abs=1e-4)
    assert spread.max() == pytest.approx(report["beta_max"], abs=1e-4)


# -- search ---------------------------------------------------------------------------------------

def test_search_json_finds_indexed_titles_and_filters_exclude(cat: tuple[Scope, Path]) -> None:
    scope, _ = cat
    res = cli_json(scope.env, "search", "fire truck parade", "--json", "-k", "5")
    assert res["query"] == "fire truck parade" and res["k"] == 5 and res["degraded"] is False
    ids = [h["video_id"] for h in res["hits"]]
    assert set(ids[:2]) == {"parade", "fire-truck"}, ids  # the title match and the truck its frames show
    titles = {h["video_id"]: h["title"] for h in res["hits"]}
    assert titles["parade"] == "Fire truck parade downtown" and [h["rank"] for h in res["hits"]] == list(range(1, len(ids) + 1))
    scores = [h["score"] for h in res["hits"]]
    assert scores == sorted(scores, reverse=True)

    french = cli_json(scope.env, "search", "a kitten", "--json", "--language", "fr")
    assert french["hits"] and {h["video_id"] for h in french["hits"]} <= {"chaton", "voiture", "snow"}
    assert french["hits"][0]["video_id"] == "chaton" and all(h["language"] == "fr" for h in french["hits"])

    for excluding in (["--tags", "no-such-tag"], ["--duration-min", "1000"], ["--language", "de"]):
        none = cli_json(scope.env, "search", "fire truck", "--json", *excluding)
        assert none["hits"] == [] and none["degraded"] is False, (excluding, none["hits"])

    bad = cli(scope.env, "search", "fire truck", "--fusion", "bogus")
    assert bad.exit_code == 2 and "invalid search" in bad.stderr and "fusion" in bad.stderr, describe(bad)


# -- serve ----------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # starts the server as its own process
def test_serve_answers_search_and_health_then_exits_0_on_sigterm(cat: tuple[Scope, Path], tmp_path: Path) -> None:
    scope, _ = cat
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([VIDSEARCH, "serve", "--port", str(port)], env={**os.environ, **scope.env},
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def healthy() -> dict | None:
            assert proc.poll() is None, f"serve exited {proc.returncode}: {log.read_text()[-3000:]}"
            try:
                r = httpx.get(f"{base}/health", timeout=5)
            except httpx.TransportError:
                return None
            return r.json() if r.status_code == 200 else None

        health = wait_for(healthy, 120, "the server to answer /health")
        assert health["status"] == "ok", health
        r = httpx.get(f"{base}/search", params={"q": "a kitten playing with yarn", "k": 3}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["hits"][0]["video_id"] == "kitten"
        assert r.json()["hits"][0]["media_uri"] == "/videos/kitten/media"  # the API's URL, not the server's path
        assert httpx.get(f"{base}/videos/sea", timeout=10).json()["title"] == "VID_20230101_1200"
        assert httpx.get(f"{base}/search", params={"q": ""}, timeout=10).status_code == 422
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert code == 0, f"serve exited {code} on SIGTERM: {log.read_text()[-3000:]}"
    with pytest.raises(httpx.TransportError):  # and nothing listens any more
        httpx.get(f"{base}/health", timeout=2)


# -- /videos/{id}/media ---------------------------------------------------------------------------

def test_media_endpoint_serves_ranges_of_allowed_files_and_refuses_hostile_paths(cat: tuple[Scope, Path]) -> None:
    scope, clip = cat
    data = clip.read_bytes()
    with serve_app(scope.settings) as base:
        whole = httpx.get(f"{base}/videos/fire-truck/media", timeout=30)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["accept-ranges"] == "bytes" and int(whole.headers["content-length"]) == len(data)

        part = httpx.get(f"{base}/videos/fire-truck/media", headers={"Range": "bytes=100-1123"}, timeout=30)
        assert part.status_code == 206 and part.content == data[100:1124]
        assert part.headers["content-range"] == f"bytes 100-1123/{len(data)}"
        tail = httpx.get(f"{base}/videos/fire-truck/media", headers={"Range": "bytes=-10"}, timeout=30)
        assert tail.status_code == 206 and tail.content == data[-10:]
        past = httpx.get(f"{base}/videos/fire-truck/media", headers={"Range": f"bytes={len(data) + 10}-"}, timeout=30)
        assert past.status_code == 416

        secret = Path("/etc/passwd").read_bytes()[:16]
        for vid in HOSTILE:  # stored paths outside the media root: absolute, `..`, a symlink out
            r = httpx.get(f"{base}/videos/{vid}/media", timeout=30)
            assert r.status_code == 403, (vid, r.status_code, r.text[:200])
            assert secret not in r.content and "media policy" in r.json()["error"] and "/etc" not in r.text
        for path in ("/videos/..%2F..%2F..%2Fetc%2Fpasswd/media", "/videos/%2Fetc%2Fpasswd/media",
                     "/videos/no-such-video/media", "/videos/fire-truck%00/media"):
            r = httpx.get(base + path, timeout=30)
            assert r.status_code in (400, 404, 422), (path, r.status_code)
            assert secret not in r.content
