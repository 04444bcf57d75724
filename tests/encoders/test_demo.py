"""The README's first command: `vidsearch demo` on embedded defaults, no servers; then what it
tells a newcomer to run next (a search from another process, on the catalogue it built)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vidsearch.plugins.milvus import lite

pytestmark = [pytest.mark.models, pytest.mark.timeout(900)]

VIDSEARCH = str(Path(sys.executable).parent / "vidsearch")
# What must never reach a newcomer's terminal: tracebacks, library warnings, gRPC noise.
NOISE = re.compile(r"Traceback|WARNING|Warning:|grpc|AllocTimestamp|Method not implemented", re.IGNORECASE)


@pytest.mark.slow  # ~50 s: renders and indexes the demo catalogue
def test_demo_indexes_real_media_and_answers(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    env = {**os.environ, "VIDSEARCH_MILVUS__URI": str(db), "VIDSEARCH_STACK__STATE_DIR": str(tmp_path / "state"),
           "VIDSEARCH_MILVUS__LITE_IDLE_S": "30"}
    env.pop("VIDSEARCH_CONFIG", None)
    try:
        res = subprocess.run([VIDSEARCH, "demo", "--stamps", "6", "--workdir", str(tmp_path / "demo"), "--json"],
                             env=env, capture_output=True, text=True, timeout=800)
        assert res.returncode == 0, res.stderr[-3000:]
        noisy = [line for line in (res.stdout + res.stderr).splitlines() if NOISE.search(line)]
        assert not noisy, noisy[:10]
        report = json.loads(res.stdout)
        assert report["milvus_uri"] == str(db)
        assert report["dead"] == 0 and report["indexed"] == report["videos"] >= 19  # 6 stamps + 13 real clips
        top = report["queries"]["thanks for watching"][0]
        assert top["video_id"] == "gradio-a.mp4", report["queries"]["thanks for watching"]
        assert report["right_answers"]["thanks for watching"] == {"right": ["gradio-a.mp4"], "rank": 1}
        assert report["bridge"] == "joined", "the demo runs the shipped head, joined with the label bridge"
        assert 'bridge = "joined"' in Path(report["config"]).read_text()

        # The next step the demo prints: search the demo catalogue from a new process, through the
        # config file it wrote (no VIDSEARCH_MILVUS__URI any more).
        after = {k: v for k, v in env.items() if k != "VIDSEARCH_MILVUS__URI"} | {"VIDSEARCH_CONFIG": report["config"]}
        found = subprocess.run([VIDSEARCH, "search", "thanks for watching", "--json"], env=after, capture_output=True,
                               text=True, timeout=300)
        assert found.returncode == 0, found.stderr[-3000:]
        assert json.loads(found.stdout)["hits"][0]["video_id"] == "gradio-a.mp4"
        noisy = [line for line in found.stderr.splitlines() if NOISE.search(line)]
        assert not noisy, noisy[:10]
    finally:
        lite.stop(str(db))


def test_demo_says_what_to_run_next(capsys: pytest.CaptureFixture[str]) -> None:
    from vidsearch.ops.cli.demo import _print_report

    report = {"indexed": 2, "videos": 2, "milvus_uri": "/c/demo.db", "seconds": 1.0, "config": "/c/my demo/vidsearch.toml",
              "queries": {"a guitar": [{"score": 0.5, "title": "guitar", "video_id": "g"}], "a whale": [], "a cat": []},
              "right_answers": {"a guitar": {"right": ["g"], "rank": 1}, "a whale": {"right": [], "rank": None},
                                "a cat": {"right": ["c"], "rank": None}}}
    _print_report(report, "127.0.0.1", 8080, "a guitar")
    err = capsys.readouterr().err
    assert "right answer g at rank 1" in err and "not in this catalogue" in err and "c not in the top 10" in err
    assert "export VIDSEARCH_CONFIG='/c/my demo/vidsearch.toml'" in err
    assert "vidsearch search 'a guitar'" in err and "http://127.0.0.1:8080/" in err and "vidsearch demo --serve" in err


def test_the_right_answer_rank_is_the_first_right_video_one_based() -> None:
    from vidsearch.ops.demo import right_answer_rank

    assert right_answer_rank(["a", "b", "c"], ("c", "b")) == 2
    assert right_answer_rank(["a"], ("z",)) is None
    assert right_answer_rank([], ("z",)) is None


def test_the_demo_runs_the_joined_bridge_unless_the_user_chose_one() -> None:
    from vidsearch.core.settings import Settings
    from vidsearch.ops.demo import demo_bridge

    assert demo_bridge(Settings()).encoders.bridge == "joined"
    assert demo_bridge(Settings(encoders={"bridge": "imagenet"})).encoders.bridge == "imagenet"
