"""The bridge head that ships in the package: the file is the one its manifest describes (digest,
version, card, outputs on the seeded probe), it fits the default backbone and text encoder, its
join weight was chosen on a validation split, its corpus is named by hash and licences, and the
ONNX graph of it reproduces what the loader serves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidsearch.encoders.bridges import SHIPPED_HEAD
from vidsearch.encoders.visual_bridge.head import BridgeHead, manifest_problems, probe
from vidsearch.encoders.visual_bridge.onnx_head import export_checked

pytestmark = pytest.mark.unit


def test_the_shipped_head_is_the_file_its_manifest_describes() -> None:
    assert SHIPPED_HEAD.exists(), "rebuild with: vidsearch pretrain --corpus C --join-data D --out " + str(SHIPPED_HEAD)
    assert manifest_problems(SHIPPED_HEAD) == []
    assert SHIPPED_HEAD.stat().st_size < 8 * 2**20, "a few MB, not a checkpoint"


def test_the_shipped_head_fits_the_default_encoders_and_says_where_it_came_from() -> None:
    from vidsearch.encoders.text import minilm_version
    from vidsearch.encoders.vision import efficientnet_version

    head = BridgeHead.load(SHIPPED_HEAD)
    head.check_fits(efficientnet_version(), minilm_version())
    card = head.card
    assert len(card["corpus_hash"]) >= 12
    assert {"fluent-emoji-3d", "openmoji", "tuxpaint"} <= set(card["corpus_sources"])
    assert all(src.get("licence") for src in card["corpus_sources"].values())
    assert card["join_choice"]["split"] == "val", "the join weight is chosen on validation, never test"
    assert card["join_weight"] == pytest.approx(float(max(card["join_choice"]["rsum_by_weight"].items(),
                                                          key=lambda kv: (kv[1], -float(kv[0])))[0]))


def test_the_onnx_graph_of_the_shipped_head_reproduces_the_loader(tmp_path: Path) -> None:
    head = BridgeHead.load(SHIPPED_HEAD)
    x = np.concatenate([probe(head), np.abs(np.random.default_rng(1).normal(size=(16, head.w1.shape[0]))).astype(np.float32)])
    assert export_checked(head, tmp_path / "head.onnx", x) > 0.9999
