"""A re-embedding job's state in Redis: what it moves, how far each chunk got, how it ended.

Progress is stored per chunk (a chunk's count is *set*, not incremented), so a chunk retried after
its worker was killed counts its documents once.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from vidsearch.ops.registry.registry import ModelRegistry


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
        return {**asdict(job), "done": done, "rate_vps": round(rate, 2), "eta_s": round(max(eta, 0.0), 1)}
