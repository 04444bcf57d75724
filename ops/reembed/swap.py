"""The validation gate and the blue/green swap of both stores' aliases.

OpenSearch: one `_aliases` call removes the alias from every version and adds it to the target,
atomically, so a search through the alias sees exactly one version. Milvus: `alter_alias`, one
call. The gate runs first and, when it fails, nothing moves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from vidsearch.ops.reembed.work import os_client
from vidsearch.ops.registry.registry import ModelEntry, ModelRegistry
from vidsearch.core.settings import Settings
from vidsearch.plugins.milvus.client import make_client as milvus_client
from vidsearch.plugins.milvus.videos import collection_name
from vidsearch.plugins.opensearch.videos import index_name

log = logging.getLogger(__name__)


@dataclass
class GateResult:
    passed: bool
    reason: str
    source_count: int
    target_count: int
    overlap: float | None


def _retriever_for(settings: Settings, entry: ModelEntry, text):
    from vidsearch.plugins.retrieval.build import TextQueryEncoder
    from vidsearch.plugins.retrieval.retriever import Retriever
    from vidsearch.plugins.retrieval.stores import OpenSearchStore

    model = None
    if entry.kind == "balanced" and entry.path:
        from vidsearch.encoders.balanced.serve import BalancedModel

        model = BalancedModel.load(entry.path)
    store = OpenSearchStore(os_client(settings), index_name(settings.indexer.index_prefix, entry.id))
    return Retriever(TextQueryEncoder(text, model), {"lexical": store, "dense": store}, prior=dict(settings.retrieval.route_prior))


def validate(settings: Settings, registry: ModelRegistry, source: str, target: str, missing: int = 0) -> GateResult:
    """Counts must be equal, short of the `missing` videos the job skipped (at most
    `max_failed_fraction` of the catalogue); the hybrid top-10 of sampled titles must overlap at
    least min_overlap."""
    client = os_client(settings)
    prefix = settings.indexer.index_prefix
    cfg = settings.reembed
    n_src = int(client.count(index=index_name(prefix, source))["count"])
    n_dst = int(client.count(index=index_name(prefix, target))["count"])
    if n_src != n_dst + missing:
        skipped = f" ({missing} skipped)" if missing else ""
        return GateResult(False, f"document counts differ: {source} has {n_src}, {target} has {n_dst}{skipped}", n_src, n_dst, None)
    if missing > cfg.max_failed_fraction * n_src:
        return GateResult(False, f"{missing} of {n_src} videos could not be re-embedded (more than max_failed_fraction "
                                 f"{cfg.max_failed_fraction})", n_src, n_dst, None)
    counts = f"counts equal ({n_src})" if not missing else f"counts equal ({n_dst} + {missing} skipped = {n_src})"
    if cfg.gate_queries == 0 or n_src == 0:
        return GateResult(True, f"{counts}; no query sample", n_src, n_dst, None)
    sample = client.search(index=index_name(prefix, source), body={
        "size": cfg.gate_queries, "_source": ["title"],
        "query": {"function_score": {"query": {"match_all": {}}, "random_score": {"seed": 7, "field": "_seq_no"}}}})
    titles = [h["_source"].get("title") for h in sample["hits"]["hits"]]
    titles = [t for t in titles if t and any(c.isalnum() for c in t)]
    from vidsearch.encoders.serving import load_text_encoder
    from vidsearch.plugins.retrieval.request import SearchRequest

    text = load_text_encoder(settings)
    old, new = _retriever_for(settings, registry.get(source), text), _retriever_for(settings, registry.get(target), text)
    overlaps = []
    for q in titles:
        req = SearchRequest(q=q[:1000], k=10, moments=False)
        a = {h.video_id for h in old.search(req).hits}
        b = {h.video_id for h in new.search(req).hits}
        overlaps.append(len(a & b) / max(len(a | b), 1))
    overlap = float(np.mean(overlaps)) if overlaps else 1.0
    if overlap < cfg.min_overlap:
        return GateResult(False, f"top-10 overlap with {source} is {overlap:.3f} < min_overlap {cfg.min_overlap}", n_src, n_dst, overlap)
    return GateResult(True, f"{counts}; top-10 overlap {overlap:.3f} >= {cfg.min_overlap}", n_src, n_dst, overlap)


def swap_aliases(settings: Settings, target: str) -> dict[str, Any]:
    """Point both stores' aliases at `target` (each store in one atomic call)."""
    cfg = settings.indexer
    out: dict[str, Any] = {}
    if "opensearch" in cfg.sinks:
        client = os_client(settings)
        new_index = index_name(cfg.index_prefix, target)
        current = list(client.indices.get_alias(name=cfg.index_prefix, ignore_unavailable=True) or {})
        actions = [{"remove": {"index": i, "alias": cfg.index_prefix}} for i in current if i != new_index]
        actions.append({"add": {"index": new_index, "alias": cfg.index_prefix}})
        client.indices.update_aliases(body={"actions": actions})
        out["opensearch"] = {"alias": cfg.index_prefix, "from": current, "to": new_index}
    if "milvus" in cfg.sinks:
        client = milvus_client(settings.milvus, timeout=30.0)
        try:
            name = collection_name(cfg.collection_prefix, target)
            before = client.describe_alias(alias=cfg.collection_prefix).get("collection_name")
            client.load_collection(name)
            client.alter_alias(collection_name=name, alias=cfg.collection_prefix)
            out["milvus"] = {"alias": cfg.collection_prefix, "from": before, "to": name}
        finally:
            client.close()
    return out


def drop_version(settings: Settings, version: str) -> None:
    from vidsearch.plugins.milvus.videos import tombstone_name

    cfg = settings.indexer
    if "opensearch" in cfg.sinks:
        os_client(settings).indices.delete(index=index_name(cfg.index_prefix, version), ignore_unavailable=True)
    if "milvus" in cfg.sinks:
        client = milvus_client(settings.milvus, timeout=30.0)
        try:
            name = collection_name(cfg.collection_prefix, version)
            for coll in (name, tombstone_name(name)):
                if client.has_collection(coll):
                    client.drop_collection(coll)
        finally:
            client.close()
