"""The README's first command: `vidsearch demo` on embedded defaults, no servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.models, pytest.mark.timeout(600)]


def test_demo_indexes_real_media_and_answers(tmp_path: Path) -> None:
    env = {**os.environ, "VIDSEARCH_MILVUS__URI": str(tmp_path / "demo.db"), "VIDSEARCH_STACK__STATE_DIR": str(tmp_path / "state")}
    vidsearch = str(Path(sys.executable).parent / "vidsearch")
    res = subprocess.run([vidsearch, "demo", "--stamps", "6", "--workdir", str(tmp_path / "demo"), "--json"],
                         env=env, capture_output=True, text=True, timeout=580)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout)
    assert report["milvus_uri"] == str(tmp_path / "demo.db")
    assert report["dead"] == 0 and report["indexed"] == report["videos"] >= 19  # 6 stamps + 13 real clips
    top = report["queries"]["thanks for watching"][0]
    assert top["video_id"] == "gradio-a.mp4", report["queries"]["thanks for watching"]
