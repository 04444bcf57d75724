"""`vidsearch copies` on the embedded default: a folder of real clips ingested with `vidsearch
ingest --source file:DIR` (frame fingerprints are written by default), then queried with an
edited, spliced copy of one of them, with an indexed id, and with a still image. No stack service
is involved: the catalogue is a milvus-lite file."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.integration.command_helpers import cli, cli_json, describe, settings_for
from vidsearch.ops.datasets import copy_transforms as T
from vidsearch.ops.datasets.clips import OPENCV_DOC
from vidsearch.ops.datasets.stamps import STAMPS
from vidsearch.ops.datasets.stamps import frames as stamp_frames
from vidsearch.ops.datasets.video_io import read_frames, write_mp4

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
FPS = 10


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    """Three real clips and a rendered stamp, ingested into an embedded catalogue."""
    tmp = tmp_path_factory.mktemp("copies-cli")
    media = tmp / "media"
    media.mkdir()
    for name in ("Megamind.avi", "tree.avi"):
        shutil.copy(OPENCV_DOC / name, media / name)
    stamps = sorted(STAMPS.rglob("*.png"))
    write_mp4(media / "stamp_clip.mp4", stamp_frames(stamps[0], 6.0), FPS)
    env = {"VIDSEARCH_MILVUS__URI": str(tmp / "catalogue.db"), "VIDSEARCH_STACK__STATE_DIR": str(tmp / "state"),
           "VIDSEARCH_INDEXER__FEATURE_STORE": str(tmp / "features"), "VIDSEARCH_ENCODERS__ASR": "false",
           "VIDSEARCH_ENCODERS__OCR": "false", "VIDSEARCH_INDEXER__MEDIA_POLICY__ROOTS": json.dumps([str(media)])}
    report = cli_json(env, "ingest", "--source", f"file:{media}", "--until-idle", "3", "--json")
    assert report["indexed"] == 3 and report["dead"] == 0, report
    return env, tmp


def _spliced_copy(out: Path) -> tuple[float, float]:
    """3.0-7.0 s of Megamind, cropped, brightened and played 1.25x, between two stamp shots;
    returns the copy's span in the query (seconds)."""
    source, _ = read_frames(OPENCV_DOC / "Megamind.avi", FPS, 640)
    copied = T.brightness_contrast(T.crop(source[30:70], 0.15), 1.2, 15)  # 3.0-7.0 s of Megamind
    copied = T.change_speed(copied, Fraction(5, 4))  # played 1.25x: 3.2 s in the query
    filler = np.stack(stamp_frames(sorted(STAMPS.rglob("*.png"))[50], 3.0))
    filler = T.resize(filler, (copied.shape[2], copied.shape[1]))
    query, spans = T.splice([filler, copied, filler[::-1]])
    write_mp4(out, query, FPS)
    return spans[1][0] / FPS, spans[1][1] / FPS


def test_an_edited_spliced_copy_is_found_with_its_segment(catalogue: tuple[dict[str, str], Path]) -> None:
    env, tmp = catalogue
    q0, q1 = _spliced_copy(tmp / "query.mp4")

    for method in ("tn", "dp"):
        out = cli_json(env, "copies", str(tmp / "query.mp4"), "--method", method, "--json")
        assert out["matches"], out
        best = out["matches"][0]
        assert best["reference_id"] == "Megamind", out
        seg = max(best["segments"], key=lambda s: min(s["query_end"], q1) - max(s["query_start"], q0))
        overlap_q = min(seg["query_end"], q1) - max(seg["query_start"], q0)
        overlap_r = min(seg["reference_end"], 7.0) - max(seg["reference_start"], 3.0)
        assert overlap_q >= 0.5 * (q1 - q0) and overlap_r >= 0.5 * 4.0, (seg, q0, q1)
        assert all(m["reference_id"] != "tree" for m in out["matches"])


def test_an_indexed_id_and_a_still_image_are_queries_too(catalogue: tuple[dict[str, str], Path]) -> None:
    env, tmp = catalogue
    by_id = cli_json(env, "copies", "tree", "--json")
    assert all(m["reference_id"] != "tree" for m in by_id["matches"])  # never itself
    frames, _ = read_frames(OPENCV_DOC / "tree.avi", 1, 640)
    from PIL import Image

    Image.fromarray(T.hflip(frames[12:13])[0]).save(tmp / "still.png")  # a mirrored screenshot
    still = cli_json(env, "copies", str(tmp / "still.png"), "--json")
    assert still["matches"] and still["matches"][0]["reference_id"] == "tree", still
    missing = cli(env, "copies", "no-such-video", "--json")
    assert missing.exit_code != 0 and "no-such-video" in missing.stdout + missing.stderr, describe(missing)


def test_post_copies_takes_an_id_or_an_upload_within_limits(catalogue: tuple[dict[str, str], Path]) -> None:
    from fastapi.testclient import TestClient

    from vidsearch.ops.api.app import create_app
    from vidsearch.plugins.retrieval.build import build_retriever

    env, tmp = catalogue
    s = settings_for(env)
    s = s.model_copy(update={"copies": s.copies.model_copy(update={"upload_max_bytes": 2 * 1024**2})})
    client = TestClient(create_app(build_retriever(s), s), base_url="http://127.0.0.1")
    by_id = client.post("/copies", json={"video_id": "Megamind", "method": "dp"})
    assert by_id.status_code == 200 and all(m["reference_id"] != "Megamind" for m in by_id.json()["matches"])
    assert client.post("/copies", json={"video_id": "nope"}).status_code == 404
    assert client.post("/copies", json={"video_id": "x", "extra": 1}).status_code == 422
    _spliced_copy(tmp / "upload.mp4")
    up = client.post("/copies?method=tn&limit=3", content=(tmp / "upload.mp4").read_bytes(), headers={"Content-Type": "video/mp4"})
    assert up.status_code == 200 and up.json()["matches"][0]["reference_id"] == "Megamind", up.text
    assert client.post("/copies", content=b"hello", headers={"Content-Type": "text/plain"}).status_code == 415
    big = client.post("/copies", content=b"0" * (2 * 1024**2 + 1), headers={"Content-Type": "video/mp4"})
    assert big.status_code == 413
    corrupt = client.post("/copies", content=b"\x00" * 4096, headers={"Content-Type": "video/mp4"})
    assert corrupt.status_code == 422 and "error" in corrupt.json()
