"""`vidsearch bench ingest|query|reembed` on tiny inputs against the real stack: each runs, prints
JSON with the keys its documentation names and values that hang together; what it leaves on the
shared stack is checked (where it promises to clean up) and then removed.
`bench encode` is in test_cmd_encoders.py (it shares the ONNX export)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cleanup import drop_resources, leftovers
from tests.integration.command_helpers import cli, describe, only_debian_clips, settings_for, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.models, pytest.mark.slow]
# Benchmarks name what they create themselves (a random tag, not from the settings), and other
# sessions may run them at the same time: a test finds its own tags from what the run left in its
# own state/cache folders or printed, and only ever looks at (and drops) those.
BENCH_TAG = re.compile(r"bench_(?:pre|media|reembed|kafka|scale\d+)(?:_cf|_kp)?_[0-9a-f]{6}")
QUERY_INDEX = re.compile(r"into (vidsearch-bench-\d+-[0-9a-f]{6})")


def test_bench_help_lists_every_benchmark(tmp_path: Path) -> None:
    result = cli({"VIDSEARCH_STACK__STATE_DIR": str(tmp_path)}, "bench", "--help")
    assert result.exit_code == 0
    listed = set(re.findall(r"│ ([\w-]+) ", result.stdout))
    assert {"encode", "ocr", "text-graphs", "ingest", "query", "reembed", "copies"} <= listed, result.stdout


@pytest.fixture
def bench_env(stack: object, tmp_path: Path) -> dict[str, str]:
    """Own state and cache folders (no real clip download: only Debian's four), no OCR or ASR
    (the encoders' slowest stages; they have their own tests)."""
    only_debian_clips(tmp_path / "cache")
    return {"VIDSEARCH_STACK__STATE_DIR": str(tmp_path / "state"), "VIDSEARCH_STACK__CACHE_DIR": str(tmp_path / "cache"),
            "VIDSEARCH_ENCODERS__OCR": "false", "VIDSEARCH_ENCODERS__ASR": "false"}


@pytest.fixture
def bench_tags(bench_env: dict[str, str]) -> Iterator[set[str]]:
    """The names this test's benchmark run gave its resources; whatever they left is dropped."""
    tags: set[str] = set()
    yield tags
    errors = drop_resources(settings_for(bench_env), sorted(tags)) if tags else []
    assert not errors, errors


def _tags_under(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if BENCH_TAG.fullmatch(p.name)} if folder.is_dir() else set()


def test_bench_query_reports_latencies_and_recall_and_drops_its_index(bench_env: dict[str, str], bench_tags: set[str]) -> None:
    result = cli(bench_env, "bench", "query", "--sizes", "300,600", "--queries", "25", "--json")
    bench_tags.update(QUERY_INDEX.findall(result.stderr))  # its progress names the indices it loads
    assert result.exit_code == 0, describe(result)
    assert len(bench_tags) == 2, result.stderr
    report = json.loads(result.stdout)
    assert report["queries"] == 25 and report["query_encode_ms_mean"] > 0
    assert [r["docs"] for r in report["runs"]] == [300, 600]
    for run in report["runs"]:
        assert run["load_s"] >= 0
        for route in ("bm25", "knn", "fused", "opensearch_hybrid"):
            p = run["routes"][route]
            assert 0 < p["p50_ms"] <= p["p95_ms"] <= p["p99_ms"], (route, p)
        assert 0.9 <= run["recall_at_10"] <= 1.0  # HNSW on a few hundred vectors is all but exact
        assert run["fused_p99_over_slowest_route_p99"] > 0
        assert run["targets"]["recall_at_10_ge_0_95"] == (run["recall_at_10"] >= 0.95)
        assert set(run["targets"]) == {"fused_p99_le_1_2x_slowest", "recall_at_10_ge_0_95"}
    small, large = report["runs"]
    assert 0 < small["index_mb"] < large["index_mb"], "twice the documents take more disk"
    growth = report["growth"]  # how p50 grows with size, fitted over the two sizes
    assert set(growth["p50_exponent"]) == {"bm25", "knn", "fused", "opensearch_hybrid"}
    assert growth["fused_waits_on"] in ("bm25", "knn")
    assert growth["index_mb_per_100k_docs"] == pytest.approx(large["index_mb"] * 100_000 / 600, abs=0.1)
    assert leftovers(settings_for(bench_env), bench_tags) == {}, "bench query left its index behind"


def test_bench_ingest_reports_pipeline_against_encoder_throughput(bench_env: dict[str, str], bench_tags: set[str]) -> None:
    # precomputed-feature events only: real media would decode and encode each clip once per
    # Kafka client measured (the media path has its own indexer tests)
    result = cli(bench_env, "bench", "ingest", "--events", "30", "--media-rounds", "0", "--scale", "40", "--json")
    bench_tags.update(_tags_under(Path(bench_env["VIDSEARCH_STACK__STATE_DIR"]) / "bench-features"))
    assert result.exit_code == 0, describe(result)
    report = json.loads(result.stdout)
    assert report["target_overhead"] == 0.10
    keys = {"events", "indexed", "dead", "encoder_only_eps", "pipeline_eps", "overhead", "pipeline_encode_s",
            "pipeline_sink_s", "pipeline_active_s"}
    pre = report["precomputed"]
    assert keys <= set(pre), pre
    assert pre["events"] == pre["indexed"] == 30 and pre["dead"] == 0
    assert pre["encoder_only_eps"] > 0 and pre["pipeline_eps"] > 0
    assert pre["overhead"] == pytest.approx(pre["encoder_only_eps"] / pre["pipeline_eps"] - 1, abs=0.02)
    # each stage is one thread: its busy time fits in the run, though the stages' sum need not
    for stage in ("pipeline_decode_s", "pipeline_embed_s", "pipeline_build_s", "pipeline_sink_s"):
        assert 0 < pre[stage] <= pre["pipeline_active_s"], (stage, pre)
    assert pre["pipeline_encode_s"] == pytest.approx(pre["pipeline_decode_s"] + pre["pipeline_embed_s"] + pre["pipeline_build_s"], abs=0.003)
    assert pre["pipeline_depth"] == 4
    cpu = pre["cpu"]  # the stack's services run here: their CPU is counted beside the indexer's
    assert cpu["indexer_s"] > 0 and {"kafka", "opensearch", "milvus"} <= set(cpu["services_s"]), cpu
    assert 0 < cpu["floor_active_s"] and cpu["floor_overhead"] is not None
    assert report["real_media"]["events"] == 0  # no media rounds: the case is empty, not a crash
    assert pre["peak_rss_mb"]["indexer"] > 0
    [row] = report["scale"]  # the cost-against-size row: its own catalogue, events made on the fly
    assert row["events"] == row["indexed"] == 40 and row["dead"] == 0 and row["pipeline_eps"] > 0
    assert row["peak_rss_mb"]["indexer"] > 0
    # this test's own state folder holds no service: their memory and disk are not guessed at
    assert set(row["peak_rss_mb"]) == {"indexer"} and row["disk_added_mb"] == {} == row["disk_mb_per_100k"]
    # a catalogue per Kafka client measured, each with its own topics, which the benchmark
    # deletes; their indices and collections are dropped by the fixture
    assert bench_tags and {t.split("_")[1] for t in bench_tags} == {"pre", "scale40"}, bench_tags
    s = settings_for(bench_env)  # Kafka lists a deleted topic for a moment: give it a few seconds
    wait_for(lambda: not any(k.startswith("kafka") for k in leftovers(s, bench_tags)), 20, "the topics to be deleted")


def test_bench_reembed_compares_head_only_with_full_and_cleans_up(bench_env: dict[str, str], bench_tags: set[str]) -> None:
    result = cli(bench_env, "bench", "reembed", "--videos", "2", "--replicas", "3", "--json")
    bench_tags.update(_tags_under(Path(bench_env["VIDSEARCH_STACK__CACHE_DIR"]) / "bench"))
    assert result.exit_code == 0, describe(result)
    assert len(bench_tags) == 1, bench_tags
    report = json.loads(result.stdout)
    assert set(report) == {"videos", "head_only_vps", "full_vps", "speedup", "workers", "worker_catalogue", "targets"}
    assert report["videos"] == 2 and report["worker_catalogue"] == 2 * 3
    assert report["head_only_vps"] > 0 and report["full_vps"] > 0
    assert report["speedup"] == pytest.approx(report["head_only_vps"] / report["full_vps"], rel=0.1)
    assert report["head_only_vps"] > report["full_vps"]  # stored features beat re-extraction
    assert set(report["workers"]) == {"1", "2"} and all(v > 0 for v in report["workers"].values())
    assert set(report["targets"]) == {"speedup_ge_20"} and report["targets"]["speedup_ge_20"] == (report["speedup"] >= 20)
    left = leftovers(settings_for(bench_env), bench_tags)
    assert not any(k.startswith(("opensearch", "milvus", "kafka")) for k in left), f"bench reembed left {left}"
