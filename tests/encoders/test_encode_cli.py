"""`vidsearch encode --json` on a real clip and a non-media file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.models, pytest.mark.timeout(300)]


def test_encode_cli_reports_features_and_errors(clip, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("this is not a video")
    vidsearch = str(Path(sys.executable).parent / "vidsearch")
    res = subprocess.run(
        [vidsearch, "encode", str(clip("a.mp4")), str(bogus), "--json", "--no-asr", "--save", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=280,
    )
    assert res.returncode == 1, "a failed file must make the exit code non-zero"
    good, bad = json.loads(res.stdout)["files"]
    assert good["keyframes"] == len(good["keyframe_times"]) >= 3
    assert good["dims"] == {"frame_features": 1280, "frame_bridge": 384, "text": 384, "audio": 384}
    assert any("THANKS" in o["text"].upper() for o in good["ocr"])
    assert (tmp_path / "out" / "a.npz").exists()
    assert bad["error"] == "CorruptMediaError" and "notes.mp4" in bad["message"]
