"""No Tux Paint validation or test stamp, nor any of their captions in any language, enters the
pretraining corpus: not through the Tux Paint source, and not through another source that
happens to carry the same picture or the same words. Built from the real packaged stamps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidsearch.ops.datasets.pretrain import corpus as corpus_mod
from vidsearch.ops.datasets.pretrain.corpus import build, held_out, normalise
from vidsearch.ops.datasets.pretrain.sources import SourceImage
from vidsearch.ops.datasets.stamps import stamps
from vidsearch.ops.datasets.tuxpaint import captions_by_language, split_of, video_id

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def split_stamps():
    by_split: dict[str, list] = {"train": [], "val": [], "test": []}
    for s in stamps():
        by_split[split_of(s.caption)].append(s)
    return by_split


def test_the_tux_paint_source_brings_train_stamps_only(tmp_path: Path, split_stamps) -> None:
    manifest = build(tmp_path, tmp_path / "cache", ["tuxpaint"], variants=1)
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    train_ids = {"tuxpaint:" + video_id(s) for s in split_stamps["train"]}
    held_ids = {"tuxpaint:" + video_id(s) for s in split_stamps["val"] + split_stamps["test"]}
    assert rows and {r["key"] for r in rows} <= train_ids and not {r["key"] for r in rows} & held_ids
    guard = held_out()
    assert not [t for r in rows for names in r["texts"].values() for t in names if guard.text_leaks(t)]
    assert manifest["pairs"] == len(rows) == manifest["sources"]["tuxpaint"]["pairs"]
    assert all((tmp_path / r["image"]).exists() for r in rows)


def test_a_held_out_picture_or_caption_from_another_source_is_dropped(tmp_path: Path, split_stamps, monkeypatch) -> None:
    test_stamp = split_stamps["test"][0]
    foreign = next(iter(captions_by_language(test_stamp.png).values()), test_stamp.caption)
    train_stamp = split_stamps["train"][0]
    planted = [
        # the test stamp's picture under an innocent name: dropped by its image
        SourceImage("openmoji:planted-1", "openmoji", test_stamp.png, "g1", {"en": ["a harmless drawing"]}),
        # a train picture named with the test caption and a translation of it: those names go, the rest stays
        SourceImage("openmoji:planted-2", "openmoji", train_stamp.png, "g2",
                    {"en": [test_stamp.caption, "another name"], "xx": [foreign]}),
    ]
    monkeypatch.setattr(corpus_mod, "read_source", lambda name, cache: iter(planted))
    manifest = build(tmp_path, tmp_path / "cache", ["openmoji"], variants=1)
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert [r["key"] for r in rows] == ["openmoji:planted-2"]
    assert rows[0]["texts"] == {"en": ["another name"]}
    counts = manifest["sources"]["openmoji"]
    assert counts["held_out_images"] == 1 and counts["held_out_texts"] == 2
    assert normalise(test_stamp.caption) in held_out().texts
