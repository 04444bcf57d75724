"""Celery tasks of re-embedding: one per chunk (a chord), then `finish` (catch-up, gate, swap).

Late acknowledgement and a JSON-only payload: a worker killed mid-chunk leaves its message
unacknowledged; Redis redelivers it after the visibility timeout and the chunk runs again from
the start. Its writes are idempotent (same ids, same versions) and its progress is *set*, so
nothing is duplicated or counted twice.
"""

from __future__ import annotations

from typing import Any

from vidsearch.ops.celery_app import app


@app.task(name="vidsearch.reembed.chunk", acks_late=True, reject_on_worker_lost=True,
          autoretry_for=(ConnectionError, TimeoutError), retry_backoff=True, max_retries=5)
def chunk(scope: dict[str, Any], job_id: str, slice_id: int, slices: int) -> dict[str, int]:
    from vidsearch.ops.registry.registry import ModelRegistry
    from vidsearch.ops.reembed.job import scoped_settings
    from vidsearch.ops.reembed.state import JobStore
    from vidsearch.ops.reembed.work import run_chunk

    settings = scoped_settings(scope)
    registry = ModelRegistry(settings)
    jobs = JobStore(registry)
    job = jobs.get(job_id)
    if job is None:
        raise LookupError(f"unknown reembed job {job_id}")
    return run_chunk(settings, registry, job.source, job.target, slice_id, slices, settings.reembed.batch_size,
                     progress=lambda done: jobs.set_chunk(job_id, slice_id, done))


@app.task(name="vidsearch.reembed.finish", acks_late=True)
def finish(chunk_results: list[dict[str, Any]], scope: dict[str, Any], job_id: str) -> dict[str, Any]:
    from dataclasses import asdict

    from vidsearch.ops.reembed.job import finish as finish_job
    from vidsearch.ops.reembed.job import scoped_settings

    return asdict(finish_job(scoped_settings(scope), job_id, chunk_results))
