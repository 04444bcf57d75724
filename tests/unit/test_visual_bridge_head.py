"""The bridge head: its file round-trips without pickle and refuses misfits, and training on a
small synthetic corpus (a hidden linear map from features to texts) learns to retrieve the right
concept, with co-relevant rows masked and hard-negative batches built from text neighbours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidsearch.encoders.text import normalize_rows
from vidsearch.encoders.visual_bridge.head import BridgeHead, BridgeHeadError, PretrainedBridge
from vidsearch.encoders.visual_bridge.train import Corpus, PretrainConfig, batches, recall_at_1, text_neighbours, train

pytestmark = pytest.mark.unit


def _head(rng: np.random.Generator, card: dict | None = None) -> BridgeHead:
    return BridgeHead(rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32),
                      rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32),
                      card or {"backbone": "lite0@x", "text": "minilm@y"})


def test_a_saved_head_loads_back_identical_and_gives_unit_vectors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    head = _head(rng)
    head.save(tmp_path / "h.npz")
    back = BridgeHead.load(tmp_path / "h.npz")
    x = rng.normal(size=(3, 6)).astype(np.float32)
    assert back.version == head.version
    np.testing.assert_allclose(back(x), head(x), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(back(x), axis=1), 1.0, rtol=1e-5)
    assert back(np.zeros((0, 6), np.float32)).shape == (0, 4)
    assert PretrainedBridge(back, "minilm@y").version == f"{head.version}/minilm@y"


def test_a_head_for_another_backbone_or_text_encoder_is_refused(tmp_path: Path) -> None:
    head = _head(np.random.default_rng(1))
    head.check_fits("lite0@x", "minilm@y")
    with pytest.raises(BridgeHeadError, match="lite2"):
        head.check_fits("lite2@z", "minilm@y")
    with pytest.raises(BridgeHeadError):
        head.check_fits("lite0@x", "e5@q")


def test_a_file_that_is_not_a_head_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"junk")
    np.savez(tmp_path / "partial.npz", w1=np.zeros((2, 2)))
    for name in ("junk.npz", "partial.npz", "missing.npz"):
        with pytest.raises(BridgeHeadError):
            BridgeHead.load(tmp_path / name)


def test_hard_negative_batches_hold_each_anchor_beside_its_text_neighbours() -> None:
    rng = np.random.default_rng(0)
    targets = normalize_rows(rng.normal(size=(40, 8)).astype(np.float32))
    groups = np.arange(40) // 2  # pairs of co-relevant rows
    neigh = text_neighbours(targets, groups, 3)
    assert not (groups[neigh] == groups[:, None]).any(), "a neighbour is never of the same concept"
    for b in batches(40, 16, rng, neigh[:, :1]):
        anchors_in = set(b.tolist())
        assert len(anchors_in) == len(b)
    assert sorted(np.concatenate(batches(40, 16, rng, None)).tolist()) == list(range(40))


def _synthetic(n_concepts: int, per: int, seed: int) -> Corpus:
    rng = np.random.default_rng(seed)
    concept_text = normalize_rows(rng.normal(size=(n_concepts, 16)).astype(np.float32))
    hidden_map = rng.normal(size=(16, 32)).astype(np.float32)
    groups = np.repeat(np.arange(n_concepts), per)
    feats = concept_text[groups] @ hidden_map + 0.3 * rng.normal(size=(len(groups), 32)).astype(np.float32)
    split = np.where(groups % 5 == 0, "val", "train")
    return Corpus(normalize_rows(feats).astype(np.float32), concept_text[groups], groups.astype(str),
                  np.tile(np.arange(per), n_concepts), split, [str(g) for g in groups])


def test_training_learns_to_name_unseen_concepts_far_above_chance() -> None:
    corpus = _synthetic(120, 3, seed=0)
    va = corpus.split == "val"
    before = recall_at_1(corpus.features[va][:, :16], corpus.targets[va], corpus.groups[va])  # an untrained guess
    head, report = train(corpus, PretrainConfig(hidden=64, epochs=30, batch=64, patience=30), {"backbone": "b", "text": "t"})
    after = recall_at_1(head(corpus.features[va]), corpus.targets[va], corpus.groups[va])
    assert report["val_r1"] == pytest.approx(after, abs=1e-4)
    assert after > 0.6 and after > before + 0.4, (before, after)
    assert head.card["backbone"] == "b" and head.card["config"]["hidden"] == 64


def test_a_record_is_rebridged_from_its_stored_features_by_the_head_alone() -> None:
    from vidsearch.encoders.extract import in_text_space
    from vidsearch.encoders.features import VideoFeatures

    rng = np.random.default_rng(3)
    head = _head(rng, {"backbone": "lite0@1", "text": "t@2"})
    bridge = PretrainedBridge(head, "t@2")
    frames = rng.normal(size=(2, 6)).astype(np.float32)
    f = VideoFeatures(video_id="v", frame_features=frames, encoder_versions={"text": "t@2", "bridge": "bridge@t@2/k5", "vision": "lite0@1"})

    class _Text:
        version = "t@2"

        def encode(self, texts, kind="passage"):
            return np.ones((len(texts), 4), np.float32) / 2

    out = in_text_space(f, _Text(), bridge)  # type: ignore[arg-type]
    np.testing.assert_allclose(out.frame_bridge, head(frames), rtol=1e-6)
    assert out.encoder_versions["bridge"] == bridge.version and out.encoder_versions["vision"] == "lite0@1"
