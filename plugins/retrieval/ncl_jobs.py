"""NCL recompute wired to settings: which bank, which stores. Called by the CLI and by Celery beat."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.plugins.retrieval.ncl_index import recompute
from vidsearch.plugins.retrieval.query_log import QueryLog

MIN_LOGGED = 50


def query_bank(settings: Settings) -> tuple[np.ndarray, str]:
    cfg = settings.retrieval
    logged = QueryLog(cfg.query_log or settings.stack.state_dir / "query_log.f32").tail(cfg.ncl_bank_size)
    if len(logged) >= MIN_LOGGED:
        return logged, "query_log"
    if cfg.model_dir is not None and (cfg.model_dir / "ncl_bank.npy").is_file():
        return np.load(cfg.model_dir / "ncl_bank.npy"), "model_bank"
    if len(logged):
        return logged, "query_log"
    raise ValueError(f"no query bank: the query log has {len(logged)} queries and no model bank is configured")


def state_path(settings: Settings) -> Path:
    """Where the last recompute's NCL state lives (per catalogue alias)."""
    return settings.stack.state_dir / "ncl" / f"{settings.indexer.index_prefix}.npz"


def recompute_from_settings(settings: Settings) -> dict[str, Any]:
    from vidsearch.plugins.milvus.client import make_client as milvus_client
    from vidsearch.plugins.opensearch.client import make_client

    bank, source = query_bank(settings)
    cfg = settings.indexer
    os_target = (make_client(settings.opensearch), cfg.index_prefix) if "opensearch" in cfg.sinks else None
    mv_client = milvus_client(settings.milvus, timeout=60.0) if "milvus" in cfg.sinks else None
    try:
        report = recompute(bank, settings.retrieval.ncl_tau, os_target, (mv_client, cfg.collection_prefix) if mv_client else None)
    finally:
        if mv_client is not None:
            mv_client.close()
    if report.state is not None:
        report.state.save(state_path(settings))
    return {**report.as_dict(), "bank_source": source}
