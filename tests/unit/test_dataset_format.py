"""Malformed dataset folders fail early with a DatasetError that names the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidsearch.ops.datasets.format import DatasetError, load_dataset
from vidsearch.ops.datasets.stamps import stamps
from vidsearch.ops.datasets.tuxpaint import _leaks, metadata, split_of

pytestmark = pytest.mark.unit


def _write(root: Path, videos: list[dict] | None, queries: list[dict] | None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if videos is not None:
        (root / "videos.jsonl").write_text("".join(json.dumps(v) + "\n" for v in videos))
    if queries is not None:
        (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    return root


V = [{"video_id": "a", "path": "a.mp4", "title": "t", "description": "", "subset": "text_rich", "split": "test"},
     {"video_id": "b", "path": "b.mp4", "title": "VID_1", "description": "", "subset": "text_poor", "split": "train"}]
Q = [{"query_id": "q1", "text": "a frog", "relevant": ["a"]}]


def test_a_good_folder_loads_and_splits(tmp_path: Path) -> None:
    ds = load_dataset(_write(tmp_path, V, Q))
    vids, qs = ds.split("test")
    assert [v.video_id for v in vids] == ["a"] and qs[0].relevant == ["a"]
    assert ds.media_path(vids[0]) == tmp_path / "a.mp4"
    assert len(ds.fingerprint()) == 16


@pytest.mark.parametrize(("videos", "queries", "message"), [
    (None, Q, "videos.jsonl: missing"),
    (V, None, "queries.jsonl: missing"),
    ([], Q, "no records"),
    (V, [{"query_id": "q1", "text": "x", "relevant": ["a", "nope"]}], "unknown video ids \\['nope'\\]"),
    (V, [{"query_id": "q1", "text": "x", "relevant": []}], "relevant"),
    (V, [{"query_id": "q1", "text": "", "relevant": ["a"]}], "text"),
    ([{**V[0], "subset": "medium"}], Q, "subset"),
    ([V[0], V[0]], Q, "duplicate video_id 'a'"),
    (V, Q + Q, "duplicate query_id 'q1'"),
    ([{"path": "a.mp4"}], Q, "video_id"),
])
def test_malformed_folders_raise_clear_errors(tmp_path: Path, videos, queries, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_dataset(_write(tmp_path, videos, queries))


def test_not_json_names_the_line(tmp_path: Path) -> None:
    root = _write(tmp_path, V, Q)
    (root / "videos.jsonl").write_text(json.dumps(V[0]) + "\n{not json\n")
    with pytest.raises(DatasetError, match=r"videos.jsonl:2"):
        load_dataset(root)


def test_empty_split_is_an_error(tmp_path: Path) -> None:
    ds = load_dataset(_write(tmp_path, V, Q))
    with pytest.raises(DatasetError, match="split 'val' is empty"):
        ds.split("val")
    with pytest.raises(DatasetError, match="split 'train' is empty"):  # a video but no query
        ds.split("train")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a directory"):
        load_dataset(tmp_path / "nope")


def test_tuxpaint_metadata_never_leaks_the_english_caption() -> None:
    found = stamps()
    assert len(found) > 500, "tuxpaint-stamps-default is installed by the bootstrap"
    for stamp in found:
        title, description = metadata(stamp, "text_rich")
        assert title and not _leaks(title, stamp.caption) and not _leaks(description, stamp.caption)
        poor_title, poor_desc = metadata(stamp, "text_poor")
        assert poor_title.startswith("VID_2024") and poor_desc == ""


def test_tuxpaint_split_is_by_caption_and_deterministic() -> None:
    found = stamps()
    by_caption: dict[str, set[str]] = {}
    for s in found:
        by_caption.setdefault(s.caption, set()).add(split_of(s.caption))
    assert all(len(splits) == 1 for splits in by_caption.values())
    counts = {name: sum(split_of(s.caption) == name for s in found) for name in ("train", "val", "test")}
    assert counts["test"] >= 150 and counts["train"] > counts["test"] > 0 and counts["val"] > 0
