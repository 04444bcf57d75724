"""The joined bridge and a head's shipping parts: the per-keyframe mix is the label bridge at
weight 0 and the head at 1, a deployment takes the weight from settings or the head's card, the
weight sweep breaks ties toward the label bridge, a saved head agrees with its manifest (and a
tampered one does not), and the ONNX graph reproduces the numpy head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidsearch.core.settings import Settings
from vidsearch.encoders.bridges import JoinedBridge, join_vectors, load_bridge
from vidsearch.encoders.text import normalize_rows
from vidsearch.encoders.visual_bridge.head import BridgeHead, PretrainedBridge, manifest_path, manifest_problems
from vidsearch.encoders.visual_bridge.onnx_head import export_checked, head_parity
from vidsearch.ops.modeling.join_weight import best_weight

pytestmark = pytest.mark.unit


class _Fixed:
    """A bridge that answers fixed vectors (pure-logic test double)."""

    def __init__(self, vectors: np.ndarray, version: str) -> None:
        self.vectors, self.version = vectors, version

    def from_vision(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        return self.vectors

    def from_record(self, feats: object) -> np.ndarray:
        return self.vectors


def _head(seed: int = 0, card: dict | None = None, din: int = 6, dout: int = 4) -> BridgeHead:
    rng = np.random.default_rng(seed)
    return BridgeHead(rng.normal(size=(din, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32),
                      rng.normal(size=(5, dout)).astype(np.float32), rng.normal(size=dout).astype(np.float32),
                      card or {"backbone": "lite0@x", "text": "minilm@y"})


def test_the_mix_is_the_label_bridge_at_zero_the_head_at_one_and_unit_between() -> None:
    rng = np.random.default_rng(0)
    a, b = (normalize_rows(rng.normal(size=(5, 8)).astype(np.float32)) for _ in range(2))
    np.testing.assert_allclose(join_vectors(a, b, 1.0), a, atol=1e-6)
    np.testing.assert_allclose(join_vectors(a, b, 0.0), b, atol=1e-6)
    mid = join_vectors(a, b, 0.5)
    np.testing.assert_allclose(np.linalg.norm(mid, axis=1), 1.0, rtol=1e-5)
    assert np.all((mid * a).sum(1) > (b * a).sum(1) - 1e-6), "the mix leans toward the head from the labels"
    assert join_vectors(np.zeros((0, 8), np.float32), np.zeros((0, 8), np.float32), 0.5).shape == (0, 8)


def test_a_joined_bridge_names_its_parts_and_weight_and_refuses_weights_outside_0_1() -> None:
    a = _Fixed(np.eye(3, dtype=np.float32), "head@1")
    b = _Fixed(np.eye(3, dtype=np.float32)[::-1].copy(), "labels@2")
    j = JoinedBridge(a, b, 0.3)
    assert j.version == "joined0.3:head@1+labels@2"
    assert JoinedBridge(a, b, 0.7).version != j.version
    np.testing.assert_allclose(j.from_record(object()), join_vectors(a.vectors, b.vectors, 0.3))
    with pytest.raises(ValueError):
        JoinedBridge(a, b, 1.5)


def test_the_deployment_takes_the_weight_from_settings_else_from_the_heads_card(tmp_path: Path, monkeypatch) -> None:
    import vidsearch.encoders.vision as vision

    class Labels(_Fixed):
        def __init__(self, text: object, top_k: int, cache_dir: Path) -> None:
            super().__init__(np.zeros((0, 4), np.float32), f"labels/k{top_k}")

    monkeypatch.setattr(vision, "TextBridge", Labels)
    text = type("T", (), {"version": "minilm@y"})()
    head = _head(card={"backbone": "lite0@x", "text": "minilm@y"}).with_card(join_weight=0.3)
    head.save(tmp_path / "h.npz")
    base = {"stack": {"cache_dir": str(tmp_path)}}
    joined = load_bridge(Settings(**base, encoders={"bridge": "joined", "bridge_head": str(tmp_path / "h.npz")}), text, "lite0@x")
    assert isinstance(joined, JoinedBridge) and joined.weight == 0.3
    chosen = load_bridge(Settings(**base, encoders={"bridge": "joined", "bridge_head": str(tmp_path / "h.npz"),
                                                    "bridge_join_weight": 0.8}), text, "lite0@x")
    assert isinstance(chosen, JoinedBridge) and chosen.weight == 0.8
    alone = load_bridge(Settings(**base, encoders={"bridge": "pretrained", "bridge_head": str(tmp_path / "h.npz")}), text, "lite0@x")
    assert isinstance(alone, PretrainedBridge)
    assert isinstance(load_bridge(Settings(**base), text, "lite0@x"), Labels)


def test_the_sweep_takes_the_best_weight_and_the_smaller_one_on_a_tie() -> None:
    assert best_weight({0.0: 90.0, 0.5: 120.0, 1.0: 100.0}) == 0.5
    assert best_weight({0.0: 90.0, 0.3: 120.0, 0.6: 120.0}) == 0.3


def test_a_saved_head_agrees_with_its_manifest_and_a_tampered_one_does_not(tmp_path: Path) -> None:
    head = _head(1).half().with_card(corpus_hash="abc")
    path = tmp_path / "bridge_head.npz"
    head.save(path)
    assert manifest_problems(path) == []
    back = BridgeHead.load(path)
    assert back.version == head.version, "float16 on disk, the same weights after loading"
    full = _head(1)
    x = np.abs(np.random.default_rng(2).normal(size=(8, 6))).astype(np.float32)
    assert float(np.min((full(x) * back(x)).sum(1))) > 0.9999
    other = _head(3).half()
    other.save(tmp_path / "other.npz")
    path.write_bytes((tmp_path / "other.npz").read_bytes())
    problems = manifest_problems(path)
    assert any("digest" in p for p in problems) and any("version" in p for p in problems)
    manifest_path(path).unlink()
    assert manifest_problems(path)


def test_the_onnx_head_reproduces_the_numpy_head(tmp_path: Path) -> None:
    head = _head(4, din=12, dout=7)
    x = np.abs(np.random.default_rng(5).normal(size=(9, 12))).astype(np.float32)
    parity = export_checked(head, tmp_path / "h.onnx", x)
    assert parity > 0.9999
    assert head_parity(_head(6, din=12, dout=7), tmp_path / "h.onnx", x) < 0.99, "another head's graph does not pass"


def test_a_model_keeps_the_bridge_it_was_trained_on_and_eval_rebuilds_it(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from vidsearch.ops.modeling.training import MODEL_BRIDGE_HEAD, bridge_settings, keep_bridge

    _head().with_card(join_weight=0.4).half().save(tmp_path / "h.npz")
    trained_on = Settings(encoders={"bridge": "joined", "bridge_head": str(tmp_path / "h.npz")})
    feats = {"v": SimpleNamespace(encoder_versions={"bridge": "joined0.4:x+y"})}
    model = tmp_path / "model"
    entry = keep_bridge(trained_on, feats, model)  # type: ignore[arg-type]
    assert entry == {"kind": "joined", "version": "joined0.4:x+y", "head": MODEL_BRIDGE_HEAD, "join_weight": 0.4}
    assert BridgeHead.load(model / MODEL_BRIDGE_HEAD).version == BridgeHead.load(tmp_path / "h.npz").version
    again = bridge_settings(Settings(), model, {"bridge": entry}).encoders
    assert (again.bridge, again.bridge_head, again.bridge_join_weight) == ("joined", model / MODEL_BRIDGE_HEAD, 0.4)
    assert bridge_settings(Settings(encoders={"bridge": "joined"}), model, {}).encoders.bridge == "imagenet", \
        "a model from before bridges were recorded was trained on the label bridge"
    assert keep_bridge(Settings(), feats, model) == {"kind": "imagenet", "version": "joined0.4:x+y"}  # type: ignore[arg-type]
