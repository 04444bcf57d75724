"""Start, finish, roll back and clean up re-embedding jobs (the Celery tasks call these).

start: create the target version in every store (not behind the alias), add the target to the live
       write targets (ingestion now writes both versions), record the job, launch the chord.
finish: catch up, validate, swap every store's alias, make the target current and keep the source warm
        (still written) for `retention_s`, so a rollback loses nothing; or fail, leaving the
        aliases where they were, with the reason.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from vidsearch.core.settings import Settings
from vidsearch.ops.reembed.payload import catalogue, worker_settings
from vidsearch.ops.reembed.state import Job, JobStore
from vidsearch.ops.reembed.swap import drop_version, swap_aliases, validate, version_exists
from vidsearch.ops.reembed.work import catalogue_store, catch_up, missing_in, target_writer
from vidsearch.ops.registry.registry import ModelRegistry, RegistryError
from vidsearch.ops.registry.routing import ROUTING_TTL_S

log = logging.getLogger(__name__)
MAX_REPORTED = 100  # failed video ids listed in a job's report (the count is always complete)


def scoped_settings(task_catalogue: Any) -> Settings:
    """A worker's settings for a task naming `task_catalogue`: its own configuration, checked
    against the catalogue (see `payload`); nothing else in a message is ever turned into settings."""
    return worker_settings(task_catalogue)


def start(settings: Settings, target: str) -> Job:
    from celery import chord

    from vidsearch.ops.tasks.reembed import chunk, finish

    registry = ModelRegistry(settings)
    registry.get(target)  # unknown versions fail here, before anything is created
    source = registry.current()
    if source == target:
        raise RegistryError(f"{target} is already the current version")
    running = JobStore(registry).get()
    if running is not None and running.state in ("running", "validating"):
        raise RegistryError(f"job {running.id} ({running.source} -> {running.target}) is still {running.state}")
    writer = target_writer(settings, registry.get(target))
    try:
        writer.ensure()
        registry.add_extra(target)  # live ingestion writes both versions from now on
        reader = catalogue_store(writer.stores)
        reader.refresh(source)
        total = reader.count(source)
    finally:
        writer.close()
    job = JobStore(registry).create(source, target, settings.reembed.chunks, total, head_only=True)
    # ids only (see `payload`): the workers take every setting from their own configuration
    cat, queue = catalogue(settings), settings.reembed.queue
    header = [chunk.s(job.id, source, target, i, job.chunks, cat).set(queue=queue) for i in range(job.chunks)]
    chord(header)(finish.s(job.id, source, target, cat).set(queue=queue))
    log.info("reembed job %s started: %s -> %s, %d videos in %d chunks", job.id, source, target, total, job.chunks)
    return job


def finish(settings: Settings, job_id: str, chunk_results: list[dict[str, Any]]) -> Job:
    registry = ModelRegistry(settings)
    jobs = JobStore(registry)
    job = jobs.get(job_id)
    if job is None:
        raise RegistryError(f"unknown job {job_id}")
    if job.state in ("swapped", "failed"):
        return job  # a redelivered or retried `finish` (its first run ended, its ack was lost)
    job.state = "validating"
    jobs.save(job)
    report: dict[str, Any] = {"chunks": chunk_results, "re_extracted": sum(c.get("extracted", 0) for c in chunk_results)}
    failed: dict[str, str] = {}
    report["catch_up"] = catch_up(settings, registry, job.source, job.target, failed)
    jobs.add_failed(job.id, failed)
    job.head_only = report["re_extracted"] == 0
    # Videos skipped by a chunk or the catch-up and still absent from the target: reported, and
    # tolerated by the gate up to `max_failed_fraction` (a live write may have fixed some since).
    missing = missing_in(settings, job.target, jobs.failed(job.id))
    report["failed_videos"] = {"count": len(missing), "ids": sorted(missing)[:MAX_REPORTED],
                               "reasons": {vid: missing[vid] for vid in sorted(missing)[:MAX_REPORTED]}}
    gate = validate(settings, registry, job.source, job.target, missing=len(missing))
    report["gate"] = gate.__dict__
    if not gate.passed:
        registry.remove_extra(job.target)  # stop dual writes; the target stays for inspection
        job.state, job.reason = "failed", f"validation gate failed: {gate.reason}"
    else:
        report["swap"] = swap_aliases(settings, job.target)
        registry.set_current(job.target, previous=job.source)
        registry.remove_extra(job.target)
        registry.add_extra(job.source)  # keep the old version warm (and complete) for rollback
        registry.retain(job.source, time.time() + settings.reembed.retention_s)
        # Indexers cache their routing for ROUTING_TTL_S: a batch routed just before the swap may
        # still land. Wait that out, then level the new current once more.
        time.sleep(2 * ROUTING_TTL_S + 0.5)
        failed = {}
        report["post_swap_catch_up"] = catch_up(settings, registry, job.source, job.target, failed)
        jobs.add_failed(job.id, failed)
        job.state, job.reason = "swapped", gate.reason
    job.finished_at, job.report = time.time(), report
    jobs.save(job)
    log.info("reembed job %s %s: %s", job.id, job.state, job.reason)
    return job


def rollback(settings: Settings) -> dict[str, Any]:
    registry = ModelRegistry(settings)
    current, previous = registry.current(), registry.previous()
    if not previous:
        raise RegistryError("nothing to roll back to: no previous version")
    if not version_exists(settings, previous):
        raise RegistryError(f"the previous version {previous} was already dropped (retention_s passed)")
    swapped = swap_aliases(settings, previous)
    registry.set_current(previous, previous=current)
    registry.remove_extra(previous)
    registry.add_extra(current)
    registry.retain(current, time.time() + settings.reembed.retention_s)
    registry.forget_retained(previous)
    return {"current": previous, "previous": current, "swap": swapped}


def cleanup(settings: Settings, now: float | None = None) -> list[str]:
    """Drop retained versions whose time is up (never the current one)."""
    registry = ModelRegistry(settings)
    dropped = []
    for version in registry.expired(now or time.time()):
        if version == registry.current():
            registry.forget_retained(version)
            continue
        registry.remove_extra(version)
        drop_version(settings, version)
        registry.forget_retained(version)
        dropped.append(version)
    return dropped
