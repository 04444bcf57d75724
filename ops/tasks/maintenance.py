"""Periodic tasks (Celery beat): NCL biases from the query log, the nightly consistency check,
and dropping old versions once their rollback window has passed."""

from __future__ import annotations

import json
import time
from typing import Any

from vidsearch.ops.celery_app import app


def _settings(scope: dict[str, Any] | None):  # noqa: ANN202
    from vidsearch.core.settings import load_settings
    from vidsearch.ops.reembed.job import scoped_settings

    return scoped_settings(scope) if scope else load_settings()


@app.task(name="vidsearch.maintenance.ncl_recompute", acks_late=True)
def ncl_recompute(scope: dict[str, Any] | None = None) -> dict[str, Any]:
    from vidsearch.plugins.retrieval.ncl_jobs import recompute_from_settings

    return recompute_from_settings(_settings(scope))


@app.task(name="vidsearch.maintenance.consistency_check", acks_late=True)
def consistency_check(scope: dict[str, Any] | None = None) -> dict[str, Any]:
    from vidsearch.ops.reembed.consistency import check
    from vidsearch.ops.registry.registry import ModelRegistry

    settings = _settings(scope)
    report = check(settings)
    registry = ModelRegistry(settings)
    registry.r.set(f"{registry.prefix}:consistency", json.dumps({**report, "at": time.time()}))
    return report


@app.task(name="vidsearch.maintenance.cleanup_versions", acks_late=True)
def cleanup_versions(scope: dict[str, Any] | None = None) -> list[str]:
    from vidsearch.ops.reembed.job import cleanup

    return cleanup(_settings(scope))
