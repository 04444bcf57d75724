"""Mean and spread over seeds of every figure `vidsearch eval` reports."""

from __future__ import annotations

import numpy as np


def _stat(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(arr.mean()), 2), "std": round(float(arr.std(ddof=0)), 2),
            "min": round(float(arr.min()), 2), "max": round(float(arr.max()), 2)}


def aggregate(reports: list[dict]) -> dict:
    first = reports[0]
    metrics = {
        name: {subset: {k: _stat([r["metrics"][name][subset][k] for r in reports]) for k in ("r1", "r5", "r10", "mdr", "rsum")}
               for subset in per}
        for name, per in first["metrics"].items()
    }
    r_vt = {name: _stat([r["r_vt"][name] for r in reports]) for name in first["r_vt"] if first["r_vt"][name] is not None}
    return {"seeds": len(reports), "videos": first["videos"], "queries": first["queries"], "metrics": metrics, "r_vt": r_vt}
