"""Retrieval rows of `vidsearch eval`: the dataset's split indexed into a real store
through the same sinks as the indexer, then searched through the same retriever as the API.

Rows: bm25, dense (k-NN on the fused vector), rrf, convex, dynamic_margin (the learned gate beside
the model, or the packaged one), and opensearch_hybrid (an exact emulation of neural-search's
min-max + arithmetic-mean pipeline over the same sub-query results). The store defaults to an
embedded milvus-lite file, so no server is needed.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.connector.bulk import Item, write_items
from vidsearch.core.errors import ConfigError
from vidsearch.core.settings import Settings
from vidsearch.encoders.balanced.train import Split
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.fusion.embedder import BalancedEmbedder, DefaultEmbedder
from vidsearch.ops.modeling.evaluation import Embedded
from vidsearch.plugins.retrieval.request import SearchRequest
from vidsearch.plugins.retrieval.retriever import Retriever

log = logging.getLogger(__name__)
ROWS: dict[str, dict] = {
    "bm25": {"routes": ("bm25",), "fusion": "rrf"},
    "dense": {"routes": ("knn",), "fusion": "rrf"},
    "rrf": {"routes": ("bm25", "knn"), "fusion": "rrf"},
    "convex": {"routes": ("bm25", "knn"), "fusion": "convex"},
    "dynamic_margin": {"routes": ("bm25", "knn"), "fusion": "dynamic_margin"},
    # neural-search's min-max + arithmetic-mean pipeline, emulated over the same sub-query results
    # (the plugin is not on Maven Central, so the local stack cannot run the real one)
    "opensearch_hybrid": {"routes": ("bm25", "knn"), "fusion": "opensearch_hybrid"},
}
DEPTH = 100


# `--retrieval` choices -> (store backend, served from an embedded milvus-lite file in the work dir)
EVAL_STORES: dict[str, tuple[str, bool]] = {"opensearch": ("opensearch", False), "milvus": ("milvus", False),
                                            "milvus-lite": ("milvus", True)}


def eval_settings(settings: Settings, store: str, workdir: Path, model_dir: Path | None = None) -> Settings:
    """Settings for a throwaway catalogue of one split: fresh index/collection names, one store
    serving both roles, no fallback, the query log in the work dir."""
    if store not in EVAL_STORES:
        raise ConfigError(f"unknown retrieval store {store!r}: choose from {', '.join(EVAL_STORES)}")
    name = f"eval_{uuid.uuid4().hex[:8]}"
    backend, embedded = EVAL_STORES[store]
    upd: dict = {"indexer": settings.indexer.model_copy(update={
        "index_prefix": name.replace("_", "-"), "collection_prefix": name, "model_version": "eval", "sinks": (backend,)})}
    if embedded:
        upd["milvus"] = settings.milvus.model_copy(update={"uri": str(workdir / f"{name}.db")})
    upd["retrieval"] = settings.retrieval.model_copy(update={"lexical_store": backend, "dense_store": backend,
                                                              "fallback": False, "query_log": workdir / "queries.f32",
                                                              "model_dir": model_dir})
    return settings.model_copy(update=upd)


def indexed_retriever(settings: Settings, model_dir: Path | None, store: str, feats: list[VideoFeatures],
                      workdir: Path, text: Any = None) -> Retriever:
    """The split's videos written through the indexer's writer into a fresh catalogue, and the
    API's retriever over it: what `eval` measures is what users run."""
    from vidsearch.connector.app import make_writer
    from vidsearch.encoders.serving import load_text_encoder
    from vidsearch.plugins.retrieval.build import build_retriever

    s = eval_settings(settings, store, workdir, model_dir)
    model = None
    if model_dir is not None:
        from vidsearch.encoders.balanced.serve import BalancedModel

        model = BalancedModel.load(model_dir)
    embedder = BalancedEmbedder(model) if model is not None else DefaultEmbedder()
    write_items(make_writer(s, models=lambda: [("eval", embedder)], frame_index=False), [Item(f) for f in feats])
    return build_retriever(s, text=text or load_text_encoder(s), model=model)


def retrieval_configs(settings: Settings, model_dir: Path | None, store: str, texts: list[str],
                      workdir: Path | None = None) -> tuple[dict[str, Callable[[Split, list[VideoFeatures]], Embedded]], dict[str, str]]:
    """Config functions for `evaluate(extra=...)`, plus rows that cannot run and why."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="vidsearch-eval-"))
    if store not in EVAL_STORES:
        raise ConfigError(f"unknown retrieval store {store!r}: choose from {', '.join(EVAL_STORES)}")
    state: dict = {}

    def ranked(split: Split, feats: list[VideoFeatures], row: str) -> Embedded:
        if "retriever" not in state:
            state["retriever"] = indexed_retriever(settings, model_dir, store, feats, workdir)
            state["index"] = {f.video_id: i for i, f in enumerate(feats)}
        retriever, index = state["retriever"], state["index"]
        scores = np.full((len(texts), len(feats)), -1e9, np.float32)
        for qi, q in enumerate(texts):
            res = retriever.search(SearchRequest(q=q, k=DEPTH, moments=False, **ROWS[row]))
            for hit in res.hits:
                scores[qi, index[hit.video_id]] = hit.score
        return Embedded(scores, np.zeros((0, 1)), np.zeros((0, 1)), np.zeros((0, 1)))

    configs: dict[str, Callable[[Split, list[VideoFeatures]], Embedded]] = {row: partial(ranked, row=row) for row in ROWS}
    return configs, {}
