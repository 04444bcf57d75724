"""Keyframe-caption pairs for the bridge head come from the train split only: a validation or test
video's frames and caption never reach the head, even when its features are at hand; pairs carry
the corpus's group key for their caption and are appended as training rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.text import normalize_rows
from vidsearch.encoders.visual_bridge.train import Corpus, with_pairs
from vidsearch.ops.datasets.format import load_dataset
from vidsearch.ops.datasets.pretrain.sources import tux_group
from vidsearch.ops.modeling.keyframe_pairs import train_keyframe_pairs

pytestmark = pytest.mark.unit


def _dataset(root: Path) -> None:
    videos = [{"video_id": f"{split}-{i}", "path": f"{split}-{i}.mp4", "split": split} for split in ("train", "val", "test") for i in range(2)]
    queries = [{"query_id": v["video_id"], "text": f"A {v['video_id']} thing.", "relevant": [v["video_id"]]} for v in videos]
    (root / "videos.jsonl").write_text("".join(json.dumps(v) + "\n" for v in videos))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))


def test_only_train_keyframes_become_pairs_whatever_features_are_given(tmp_path: Path) -> None:
    _dataset(tmp_path)
    ds = load_dataset(tmp_path)
    feats = {v.video_id: VideoFeatures(video_id=v.video_id, frame_features=np.full((3, 8), i, np.float32))
             for i, v in enumerate(ds.videos)}
    x, texts, groups = train_keyframe_pairs(ds, feats)
    assert x.shape == (6, 8)
    assert set(texts) == {"A train-0 thing.", "A train-1 thing."}
    assert groups[0] == tux_group("A train-0 thing.") == "tux:a train-0 thing"
    assert not any("val" in t or "test" in t for t in texts)
    x, texts, _ = train_keyframe_pairs(ds, {k: v for k, v in feats.items() if not k.startswith("train")})
    assert x.shape[0] == 0 and texts == []


def test_pairs_are_appended_as_training_rows() -> None:
    rng = np.random.default_rng(0)
    base = Corpus(rng.normal(size=(4, 8)).astype(np.float32), normalize_rows(rng.normal(size=(4, 5)).astype(np.float32)),
                  np.array(["a", "a", "b", "b"]), np.array([0, 1, 0, 1]), np.array(["train", "train", "val", "val"]), ["x"] * 4)

    class Text:
        version = "t"

        def encode(self, texts: list[str], kind: str = "passage") -> np.ndarray:
            return normalize_rows(np.stack([np.arange(5, dtype=np.float32) + len(t) for t in texts]))

    grown = with_pairs(base, np.ones((2, 8), np.float32), ["cat", "horse"], ["tux:cat", "tux:horse"], Text())  # type: ignore[arg-type]
    assert len(grown.features) == 6 and list(grown.split[4:]) == ["train", "train"]
    assert list(grown.groups[4:]) == ["tux:cat", "tux:horse"] and grown.texts[4:] == ["cat", "horse"]
    np.testing.assert_allclose(np.linalg.norm(grown.targets, axis=1), 1.0, rtol=1e-5)
    assert with_pairs(base, np.zeros((0, 8), np.float32), [], [], Text()) is base  # type: ignore[arg-type]
