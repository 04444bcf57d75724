"""`vidsearch prior-weight`: choose how far to pull a trained model back toward the default fusion.

A trained model folder is derived into a new one whose card carries `prior.weight`
(encoders/balanced/prior.py) and a new version id; its NCL bank is recomputed, since the bank is
the training queries through the (now mixed) query path. The weight is chosen on validation
only, on two sets at once: the model's own dataset and an out-of-domain set it never trained on
(`vidsearch dataset emoji`). The rule: the smallest weight (the least departure from the
trained model, so the most in-domain gain kept) at which `balanced` is at least as good as
`naive_fusion` on every subset (all, text_rich, text_poor) of both validation splits; if no
weight gets there, the one whose worst margin is largest.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.encoders.balanced.serve import BalancedModel
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.text import TextEncoder
from vidsearch.ops.datasets.format import Dataset
from vidsearch.ops.modeling.evaluation import evaluate
from vidsearch.ops.modeling.splits import make_split
from vidsearch.ops.modeling.training import variant_dir

SUBSETS = ("all", "text_rich", "text_poor")
VARIANTS = ("balanced", "fusion_plain")


def derived_version(version: str, weight: float) -> str:
    return f"{version}-prior{round(weight * 100):03d}"


def train_queries(ds: Dataset, features: dict[str, VideoFeatures], text: TextEncoder) -> np.ndarray:
    """The training split's query vectors: what a model's NCL bank is made of."""
    return make_split(ds, "train", features, text)[0].query_vecs


def derive(model_dir: Path, weight: float, out: Path, queries: np.ndarray) -> dict[str, str]:
    """Write `out`: `model_dir` with every variant's card carrying the prior weight, a version of its
    own and an NCL bank recomputed from the training `queries` (training checkpoints are left
    behind). {variant: version}."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"prior weight must be within [0, 1], got {weight}")
    if out.exists():
        raise FileExistsError(f"{out} exists: choose a new folder for the derived model")
    shutil.copytree(model_dir, out, ignore=shutil.ignore_patterns("checkpoints"))
    versions = {}
    for variant in VARIANTS:
        dest = variant_dir(out, variant)
        if not (dest / "card.json").is_file():
            continue
        card = json.loads((dest / "card.json").read_text())
        base = card.get("prior", {}).get("from", card["version"])
        card["prior"] = {"weight": weight, "from": base}
        card["version"] = derived_version(base, weight) if weight else base
        (dest / "card.json").write_text(json.dumps(card, indent=2))
        model = BalancedModel.load(dest)
        np.save(dest / "ncl_bank.npy", model.embed_query_vectors(queries).astype(np.float32))
        versions[variant] = card["version"]
    return versions


def margins(report: dict[str, Any]) -> dict[str, float]:
    """balanced minus naive_fusion R@sum per subset of one `evaluate` report."""
    m = report["metrics"]
    return {s: round(m["balanced"][s]["rsum"] - m["naive_fusion"][s]["rsum"], 2) for s in SUBSETS}


def worst(row: dict[str, Any]) -> float:
    return min(min(row["in_domain"].values()), min(row["ood"].values()))


def pick(rows: Sequence[dict[str, Any]]) -> float:
    """The rule in the module docstring, over rows {"weight", "in_domain": {subset: margin},
    "ood": {subset: margin}}."""
    ordered = sorted(rows, key=lambda r: r["weight"])
    for row in ordered:
        if worst(row) >= 0:
            return float(row["weight"])
    return float(max(ordered, key=lambda r: (worst(r), -r["weight"]))["weight"])


def choose(model_dir: Path, settings: Settings, queries: np.ndarray, weights: Sequence[float],
           in_domain: tuple[Dataset, dict[str, VideoFeatures]], ood: tuple[Dataset, dict[str, VideoFeatures]],
           on_weight: Any = None) -> dict[str, Any]:
    """Every candidate weight on both validation splits; `settings` must carry the model's bridge,
    `queries` are the training queries (train_queries)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidsearch-prior-") as tmp:
        for w in sorted(set(weights)):
            folder = Path(tmp) / f"w{round(w * 100):03d}"
            derive(model_dir, w, folder, queries)
            own = evaluate(in_domain[0], in_domain[1], settings, folder, "val")
            other = evaluate(ood[0], ood[1], settings, folder, "val")
            row = {"weight": w, "in_domain": margins(own), "ood": margins(other),
                   "in_domain_rsum": {s: own["metrics"]["balanced"][s]["rsum"] for s in SUBSETS},
                   "ood_rsum": {s: other["metrics"]["balanced"][s]["rsum"] for s in SUBSETS}}
            rows.append(row)
            if on_weight:
                on_weight(row)
    return {"model": str(model_dir), "rows": rows, "chosen": pick(rows),
            "rule": "smallest weight with balanced >= naive_fusion on every subset of both val splits"}
