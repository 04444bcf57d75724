"""The nightly consistency check: the source of truth (stored base features, i.e. every video the
indexer accepted) against every store's current version: missing, extra, and version mismatches."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.ops.reembed.work import stores
from vidsearch.ops.registry.registry import ModelRegistry


def truth(settings: Settings) -> dict[str, int]:
    """video id -> version from the feature store (written by the indexer before any store)."""
    from vidsearch.connector.app import feature_store

    root = feature_store(settings).root
    out = {}
    for version_file in root.glob("*/*.version"):
        npz = version_file.with_suffix(".npz")
        if npz.exists():
            with np.load(npz, allow_pickle=False) as z:  # only the small __meta__ member is read
                vid = json.loads(z["__meta__"].tobytes())["video_id"]
            out[vid] = int(version_file.read_text())
    return out


def check(settings: Settings) -> dict[str, Any]:
    version = ModelRegistry(settings).current()
    src = truth(settings)
    found: dict[str, dict[str, int]] = {}
    for store in stores(settings):
        try:
            found[store.name] = {k: v for k, (v, _) in store.id_versions(version).items()}
        finally:
            store.close()
    report: dict[str, Any] = {"version": version, "videos": len(src)}
    for name, got in found.items():
        report[name] = {
            "count": len(got),
            "missing": sorted(set(src) - set(got))[:100],
            "extra": sorted(set(got) - set(src))[:100],
            "stale": sorted(v for v in set(src) & set(got) if got[v] < src[v])[:100],
        }
    report["consistent"] = all(not (report[n]["missing"] or report[n]["stale"]) for n in found)
    return report
