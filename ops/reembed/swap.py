"""The validation gate and the blue/green swap of every store's alias.

Each store moves its alias in one atomic step (`VideoStore.swap`: OpenSearch's `_aliases` call,
Milvus's `alter_alias`), so a search through the alias sees exactly one version. The gate runs
first and, when it fails, nothing moves.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.core.store import PinnedStore, VideoStore
from vidsearch.ops.reembed.work import catalogue_store, stores
from vidsearch.ops.registry.registry import ModelEntry, ModelRegistry

log = logging.getLogger(__name__)
SAMPLE_SEED = 7
SAMPLE_POOL = 20  # titles read per sampled query: the sample is drawn from the first pages of a scan


@dataclass
class GateResult:
    passed: bool
    reason: str
    source_count: int
    target_count: int
    overlap: float | None


def _retriever_for(settings: Settings, store: VideoStore, entry: ModelEntry, text):  # noqa: ANN001, ANN202
    from vidsearch.plugins.retrieval.build import TextQueryEncoder, load_fusion_model
    from vidsearch.plugins.retrieval.retriever import Retriever

    model = None
    if entry.kind == "balanced" and entry.path:
        from vidsearch.encoders.balanced.serve import BalancedModel

        model = BalancedModel.load(entry.path)
    pinned = PinnedStore(store, entry.id)
    return Retriever(TextQueryEncoder(text, model), {"lexical": pinned, "dense": pinned},
                     fusion_model=load_fusion_model(settings, Path(entry.path) if entry.kind == "balanced" and entry.path else None))


def _sample_titles(store: VideoStore, version: str, n: int) -> list[str]:
    pool: list[str] = []
    for page in store.scan(version, batch=max(n * SAMPLE_POOL, 100)):
        pool += [t for t in (d.get("title") for d in page) if t and any(c.isalnum() for c in t)]
        if len(pool) >= n * SAMPLE_POOL:
            break
    return random.Random(SAMPLE_SEED).sample(pool, min(n, len(pool)))


def validate(settings: Settings, registry: ModelRegistry, source: str, target: str, missing: int = 0) -> GateResult:
    """In every store, counts must be equal, short of the `missing` videos the job skipped (at
    most `max_failed_fraction` of the catalogue); the hybrid top-10 of sampled titles must overlap
    at least min_overlap (on the catalogue store)."""
    cfg = settings.reembed
    all_stores = stores(settings)
    try:
        n_src = n_dst = 0
        for store in all_stores:
            store.refresh(source)
            store.refresh(target)
            n_src, n_dst = store.count(source), store.count(target)
            if n_src != n_dst + missing:
                skipped = f" ({missing} skipped)" if missing else ""
                return GateResult(False, f"{store.name}: document counts differ: {source} has {n_src}, {target} has {n_dst}{skipped}",
                                  n_src, n_dst, None)
        if missing > cfg.max_failed_fraction * n_src:
            return GateResult(False, f"{missing} of {n_src} videos could not be re-embedded (more than max_failed_fraction "
                                     f"{cfg.max_failed_fraction})", n_src, n_dst, None)
        counts = f"counts equal ({n_src})" if not missing else f"counts equal ({n_dst} + {missing} skipped = {n_src})"
        if cfg.gate_queries == 0 or n_src == 0:
            return GateResult(True, f"{counts}; no query sample", n_src, n_dst, None)
        catalogue = catalogue_store(all_stores)
        titles = _sample_titles(catalogue, source, cfg.gate_queries)
        from vidsearch.encoders.serving import load_text_encoder
        from vidsearch.plugins.retrieval.request import SearchRequest

        text = load_text_encoder(settings)
        old = _retriever_for(settings, catalogue, registry.get(source), text)
        new = _retriever_for(settings, catalogue, registry.get(target), text)
        overlaps = []
        for q in titles:
            req = SearchRequest(q=q[:1000], k=10, moments=False)
            a = {h.video_id for h in old.search(req).hits}
            b = {h.video_id for h in new.search(req).hits}
            overlaps.append(len(a & b) / max(len(a | b), 1))
    finally:
        for store in all_stores:
            store.close()
    overlap = float(np.mean(overlaps)) if overlaps else 1.0
    if overlap < cfg.min_overlap:
        return GateResult(False, f"top-10 overlap with {source} is {overlap:.3f} < min_overlap {cfg.min_overlap}", n_src, n_dst, overlap)
    return GateResult(True, f"{counts}; top-10 overlap {overlap:.3f} >= {cfg.min_overlap}", n_src, n_dst, overlap)


def swap_aliases(settings: Settings, target: str) -> dict[str, Any]:
    """Point every store's alias at `target` (each store in one atomic step)."""
    out: dict[str, Any] = {}
    for store in stores(settings):
        try:
            out[store.name] = store.swap(target)
        finally:
            store.close()
    return out


def version_exists(settings: Settings, version: str) -> bool:
    """Whether every store still holds `version` (a retained version is dropped after retention_s)."""
    all_stores = stores(settings)
    try:
        return all(store.exists(version) for store in all_stores)
    finally:
        for store in all_stores:
            store.close()


def drop_version(settings: Settings, version: str) -> None:
    for store in stores(settings):
        try:
            store.drop(version)
        finally:
            store.close()
