"""Celery tasks of re-embedding: one per chunk (a chord), then `finish` (catch-up, gate, swap).

Late acknowledgement and a JSON-only payload: a worker killed mid-chunk leaves its message
unacknowledged; Redis redelivers it after the visibility timeout and the chunk runs again from
the start. Its writes are idempotent (same ids, same versions) and its progress is *set*, so
nothing is duplicated or counted twice.

A message carries ids only (job, versions, slice) and the catalogue's names as a check; the
worker's settings come from its own configuration (see `vidsearch.ops.reembed.payload`).
"""

from __future__ import annotations

from typing import Any

import redis.exceptions

from vidsearch.core.errors import InfrastructureError
from vidsearch.ops.celery_app import app

# What a chunk retries on (with backoff) instead of failing the chord: a service it needs is
# away for a while. Redis (the job record, the registry) raises redis-py's own ConnectionError,
# which is not the builtin one; the stores raise InfrastructureError subclasses.
RETRY_ON: tuple[type[Exception], ...] = (ConnectionError, TimeoutError, redis.exceptions.ConnectionError,
                                         redis.exceptions.TimeoutError, InfrastructureError)


def _job(settings: Any, job_id: str, source: str, target: str, slices: int | None = None):
    """(registry, jobs, job) after checking the message against the job record."""
    from vidsearch.ops.reembed.payload import TaskPayloadError
    from vidsearch.ops.reembed.state import JobStore
    from vidsearch.ops.registry.registry import ModelRegistry

    registry = ModelRegistry(settings)
    jobs = JobStore(registry)
    job = jobs.get(job_id)
    if job is None:
        raise LookupError(f"unknown reembed job {job_id}")
    if (job.source, job.target) != (source, target) or (slices is not None and slices != job.chunks):
        job.state, job.reason = "failed", "a task message contradicts the job record (source, target or slices)"
        jobs.save(job)
        raise TaskPayloadError(f"task for job {job_id} names {source} -> {target} in {slices} slices; "
                               f"the job is {job.source} -> {job.target} in {job.chunks}")
    return registry, jobs, job


@app.task(name="vidsearch.reembed.chunk", acks_late=True, reject_on_worker_lost=True,
          autoretry_for=RETRY_ON, retry_backoff=True, retry_backoff_max=60, max_retries=10)
def chunk(job_id: str, source: str, target: str, slice_id: int, slices: int, catalogue: dict[str, str]) -> dict[str, int]:
    from vidsearch.ops.reembed.payload import check_ids, worker_settings
    from vidsearch.ops.reembed.work import run_chunk

    check_ids(job_id, source, target, slice_id, slices)
    settings = worker_settings(catalogue)
    registry, jobs, _job_record = _job(settings, job_id, source, target, slices)
    return run_chunk(settings, registry, source, target, slice_id, slices, settings.reembed.batch_size,
                     progress=lambda done: jobs.set_chunk(job_id, slice_id, done),
                     on_failed=lambda failed: jobs.add_failed(job_id, failed))


@app.task(name="vidsearch.reembed.finish", acks_late=True, reject_on_worker_lost=True,
          autoretry_for=RETRY_ON, retry_backoff=True, retry_backoff_max=60, max_retries=10)
def finish(chunk_results: list[dict[str, Any]], job_id: str, source: str, target: str,
           catalogue: dict[str, str]) -> dict[str, Any]:
    from dataclasses import asdict

    from vidsearch.ops.reembed.job import finish as finish_job
    from vidsearch.ops.reembed.payload import check_ids, worker_settings

    check_ids(job_id, source, target)
    settings = worker_settings(catalogue)
    _job(settings, job_id, source, target)
    # the chunks' results come back through the result backend: keep their integer counts only
    results = [{k: v for k, v in r.items() if isinstance(k, str) and type(v) is int}
               for r in chunk_results if isinstance(r, dict)]
    return asdict(finish_job(settings, job_id, results))
