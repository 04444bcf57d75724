"""A re-embedding job's state in Redis: what it moves, how far each chunk got, how it ended.

Progress is stored per chunk (a chunk's count is *set*, not incremented), so a chunk retried after
its worker was killed counts its documents once. Videos that could not be re-embedded are kept in
a hash (video id -> reason), so a retried chunk records each of them once too.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Any

from vidsearch.ops.registry.registry import ModelRegistry

REASON_CHARS = 300
LISTED_FAILED = 100  # ids shown by `status` (the count is always complete)


@dataclass
class Job:
    id: str
    source: str
    target: str
    chunks: int
    total: int
    started_at: float
    state: str = "running"  # running | validating | swapped | failed
    reason: str = ""
    finished_at: float | None = None
    head_only: bool = True
    report: dict[str, Any] = field(default_factory=dict)


class JobStore:
    def __init__(self, registry: ModelRegistry) -> None:
        self.r, self.prefix = registry.r, registry.prefix.replace(":models", ":reembed")

    def create(self, source: str, target: str, chunks: int, total: int, head_only: bool) -> Job:
        job = Job(id=uuid.uuid4().hex[:12], source=source, target=target, chunks=chunks, total=total,
                  started_at=time.time(), head_only=head_only)
        self.save(job)
        self.r.set(f"{self.prefix}:latest", job.id)
        return job

    def save(self, job: Job) -> None:
        self.r.set(f"{self.prefix}:{job.id}", json.dumps(asdict(job)))

    def get(self, job_id: str | None = None) -> Job | None:
        job_id = job_id or self.r.get(f"{self.prefix}:latest")
        raw = self.r.get(f"{self.prefix}:{job_id}") if job_id else None
        return Job(**json.loads(raw)) if raw else None

    def set_chunk(self, job_id: str, chunk: int, done: int) -> None:
        self.r.hset(f"{self.prefix}:{job_id}:chunks", str(chunk), done)

    def add_failed(self, job_id: str, failed: Mapping[str, str]) -> None:
        """Record videos skipped by the job (video id -> why)."""
        if failed:
            self.r.hset(f"{self.prefix}:{job_id}:failed", mapping={vid: reason[:REASON_CHARS] for vid, reason in failed.items()})

    def failed(self, job_id: str) -> dict[str, str]:
        return dict(self.r.hgetall(f"{self.prefix}:{job_id}:failed"))

    def done(self, job_id: str) -> int:
        return sum(int(v) for v in self.r.hvals(f"{self.prefix}:{job_id}:chunks"))

    def status(self, job_id: str | None = None) -> dict[str, Any] | None:
        job = self.get(job_id)
        if job is None:
            return None
        done = self.done(job.id)
        end = job.finished_at or time.time()
        rate = done / max(end - job.started_at, 1e-6)
        eta = (job.total - done) / rate if rate > 0 and job.state == "running" else 0.0
        failed_key = f"{self.prefix}:{job.id}:failed"
        failed_ids = sorted(k for k, _ in islice(self.r.hscan_iter(failed_key), LISTED_FAILED))
        return {**asdict(job), "done": done, "rate_vps": round(rate, 2), "eta_s": round(max(eta, 0.0), 1),
                "failed_videos": int(self.r.hlen(failed_key)), "failed_ids": failed_ids}
