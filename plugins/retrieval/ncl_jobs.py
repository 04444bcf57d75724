"""NCL recompute wired to settings: which bank, which stores. Called by the CLI and by Celery beat."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.plugins.backends import configured_stores
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
    bank, source = query_bank(settings)
    stores = configured_stores(settings, timeout_s=60.0)
    try:
        report = recompute(bank, settings.retrieval.ncl_tau, stores)
    finally:
        for store in stores:
            store.close()
    if report.state is not None:
        report.state.save(state_path(settings))
    return {**report.as_dict(), "bank_source": source}
