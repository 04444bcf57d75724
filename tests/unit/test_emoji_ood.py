"""The out-of-domain emoji set's records (names never leak into text-rich metadata; co-relevant
videos share a split) and the head's held-out corpus source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidsearch.encoders.visual_bridge.train import load_corpus
from vidsearch.ops.datasets import emoji_ood
from vidsearch.ops.datasets.pretrain.sources import SourceImage


def _image(key: str, en: str, **other: str) -> SourceImage:
    return SourceImage(f"openmoji:{key}", "openmoji", Path(f"/x/{key}.svg"), key, {"en": [en], **{k: [v] for k, v in other.items()}})


def test_text_rich_metadata_never_spells_out_the_query_and_text_poor_has_none() -> None:
    img = _image("1f525", "fire", de="Feuer", id="api fire", fr="feu")
    assert emoji_ood.foreign_names(img) == ["Feuer", "feu"]  # Indonesian repeats the English word: left out
    title, description = emoji_ood.metadata(img, rich=True)
    assert {title, description} == {"Feuer", "feu"}
    title, description = emoji_ood.metadata(img, rich=False)
    assert title.startswith("VID_") and description == ""
    assert "fire" not in title.lower()


def test_splits_are_by_query_text_and_cover_val_and_test_only() -> None:
    names = [f"thing {i}" for i in range(200)]
    splits = {emoji_ood.split_of(n) for n in names}
    assert splits == {"val", "test"}
    assert emoji_ood.split_of("Fire") == emoji_ood.split_of("fire")


def test_select_spreads_a_limit_over_the_sorted_keys() -> None:
    images = [_image(f"{i:04x}", f"n{i}", de=f"d{i}") for i in range(100)][::-1]
    chosen = emoji_ood.select(images, 10)
    assert [c.key for c in chosen] == [f"openmoji:{i * 10:04x}" for i in range(10)]
    assert len(emoji_ood.select(images, None)) == 100


class _Vision:
    version = "fake@1"


class _Text:
    def encode(self, texts: list[str]) -> np.ndarray:
        return np.array([[len(t), 1.0] for t in texts], np.float32)


def test_an_excluded_source_leaves_the_head_corpus(tmp_path: Path) -> None:
    rows = [{"source": s, "group": f"g{i}", "variant": 0, "split": "train", "texts": {"en": [f"name {i}"]}, "image": "x"}
            for i, s in enumerate(["openmoji", "fluent-emoji-3d", "openmoji", "tuxpaint"])]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    np.save(tmp_path / "features-fake-1.npy", np.arange(4, dtype=np.float32)[:, None] * np.ones((4, 3), np.float32))
    whole = load_corpus(tmp_path, _Vision(), _Text())  # type: ignore[arg-type]
    held = load_corpus(tmp_path, _Vision(), _Text(), exclude=frozenset({"openmoji"}))  # type: ignore[arg-type]
    assert len(whole.texts) == 4 and held.texts == ["name 1", "name 3"]
    assert held.features[:, 0].tolist() == [1.0, 3.0]  # each row keeps its own cached features
    with pytest.raises(ValueError, match="not a source"):
        load_corpus(tmp_path, _Vision(), _Text(), exclude=frozenset({"noto"}))  # type: ignore[arg-type]
