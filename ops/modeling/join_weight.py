"""Choosing the joined bridge's weight on a dataset's validation split (never its test split).

The visual route alone is scored at each weight on the videos whose text says little (text_poor),
because that is where the bridge decides the ranking; ties go to the smaller weight, the one
closer to the label bridge every deployment already runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.encoders.balanced.metrics import subset_metrics
from vidsearch.encoders.bridges import JoinedBridge
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.text import TextEncoder
from vidsearch.encoders.visual_bridge.head import BridgeHead
from vidsearch.ops.datasets.format import Dataset
from vidsearch.ops.modeling.evaluation import bridge_rows, visual_route
from vidsearch.ops.modeling.splits import make_split

WEIGHTS = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 11))
CHOICE_SPLIT = "val"
CHOICE_SUBSET = "text_poor"


def best_weight(rsum_by_weight: dict[float, float]) -> float:
    """The weight with the highest R@sum; the smallest such weight on a tie."""
    top = max(rsum_by_weight.values())
    return min(w for w, r in rsum_by_weight.items() if r == top)


def sweep_join_weight(ds: Dataset, features: dict[str, VideoFeatures], settings: Settings, text: TextEncoder,
                      head: BridgeHead, weights: Sequence[float] = WEIGHTS) -> dict:
    """{"split", "subset", "rsum_by_weight", "join_weight"} on the validation split."""
    split, ids = make_split(ds, CHOICE_SPLIT, features, text)
    feats = [features[i] for i in ids]
    rows = bridge_rows(settings, text, feats, head)
    rsum: dict[float, float] = {}
    for w in weights:
        v = visual_route(JoinedBridge(rows["bridge_pretrained"], rows["bridge_imagenet"], float(w)), feats)
        rsum[float(w)] = subset_metrics(split.query_vecs @ v.T, split.relevant, split.subsets)[CHOICE_SUBSET]["rsum"]
    return {"split": CHOICE_SPLIT, "subset": CHOICE_SUBSET, "videos": len(ids),
            "rsum_by_weight": {f"{w:g}": r for w, r in rsum.items()}, "join_weight": best_weight(rsum)}
