"""Model-quality regression test: the balanced model trained with a fixed seed on the cached
200-stamp Tux Paint set, evaluated like `vidsearch eval` (test split, the default), must keep its
measured advantage on text-poor videos, where the title carries nothing.

Margins were measured on the test split (28 text_poor queries, 52 in all) for seeds 0, 1, 2 with
the training settings below (same numbers with the default 80 epochs: early stopping picks
epochs 3-6 on this set, and training is deterministic per seed on CPU). text_poor R@sum:

    seed  text_only  naive_fusion  fusion_plain  balanced  | balanced minus: text_only  naive  plain
    0        7.14       107.15        189.29      182.14   |                   175.00   74.99  -7.15
    1        7.14       107.15        174.99      171.42   |                   164.28   64.27  -3.57
    2        7.14       107.15        178.56      196.44   |                   189.30   89.29  +17.88

So on this set balanced does NOT reliably beat fusion_plain (the shuffle/margin ablation): the gap
changes sign across seeds. The plain-fusion bound is therefore a non-regression guard (balanced
may not fall behind fusion_plain by more than the worst observed gap plus a safety allowance),
while the bounds against text_only and naive_fusion are real wins with ~40-55% safety below the
smallest observed gap. One text_poor query moves R@k by 3.57 points. R@sum over all queries:
balanced 217.30 / 207.69 / 221.15 against naive_fusion 186.53 (plain 221.16 / 209.61 / 221.15).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vidsearch.core.settings import Settings
from vidsearch.ops.modeling.evaluation import evaluate
from vidsearch.ops.modeling.training import train_model

pytestmark = [pytest.mark.models, pytest.mark.slow]

SEED = 0
EPOCHS = 20  # best epochs measured: 3-6; 20 leaves early stopping room and halves the default's worst case
MIN_GAIN_OVER_TEXT_ONLY = 100.0  # smallest measured 164.28
MIN_GAIN_OVER_NAIVE = 30.0  # smallest measured 64.27
MAX_LOSS_TO_PLAIN = 20.0  # worst measured -7.15 (balanced behind fusion_plain); not a win, a guard


@pytest.mark.timeout(900)  # a cold cache builds the dataset first (~7 min); warm: ~1 min
def test_balanced_keeps_its_text_poor_margin(tuxpaint_ci, settings: Settings, tmp_path: Path) -> None:
    ds, feats = tuxpaint_ci
    train_model(ds, feats, settings, tmp_path / "model", seed=SEED, overrides={"epochs": EPOCHS})
    report = evaluate(ds, feats, settings, tmp_path / "model", split="test")
    m = report["metrics"]
    assert set(m) == {"text_only", "naive_fusion", "bridge_imagenet", "fusion_plain", "balanced", "balanced_ncl"}
    poor = {name: per["text_poor"]["rsum"] for name, per in m.items()}
    assert m["balanced"]["text_poor"]["queries"] >= 25, m["balanced"]["text_poor"]  # the set the margins were measured on

    # Every row must have found something, so that no comparison below holds between two zeros.
    assert all(v > 0 for v in poor.values()), poor
    assert all(per["all"]["rsum"] > 0 for per in m.values()), m

    # A camera-style title carries nothing: fusing in what the video shows must help there.
    assert poor["text_only"] < poor["naive_fusion"], poor
    assert poor["balanced"] >= poor["text_only"] + MIN_GAIN_OVER_TEXT_ONLY, poor
    assert poor["balanced"] >= poor["naive_fusion"] + MIN_GAIN_OVER_NAIVE, poor
    assert poor["balanced"] >= poor["fusion_plain"] - MAX_LOSS_TO_PLAIN, poor
    # and not by giving up the videos whose text does carry the query
    assert m["balanced"]["all"]["rsum"] >= m["naive_fusion"]["all"]["rsum"], {k: v["all"]["rsum"] for k, v in m.items()}
