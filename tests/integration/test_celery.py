"""Celery: a real worker subprocess runs a task through Redis, JSON in and out."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from kombu.exceptions import EncodeError

from vidsearch.ops.celery_app import app
from vidsearch.ops.tasks.health import ping

pytestmark = pytest.mark.integration


@pytest.fixture
def worker(stack: object, unique_name: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A solo-pool worker on a queue of its own, so the answering pid is the subprocess's."""
    queue = unique_name
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "vidsearch.ops.celery_app", "worker",
            "--pool=solo", f"--queues={queue}", f"--hostname={queue}@%h",
            "--without-gossip", "--without-mingle", "--loglevel=WARNING",
        ],
        env=os.environ.copy(),
    )
    yield queue, proc
    proc.terminate()
    assert proc.wait(timeout=30) == 0, "worker did not shut down cleanly on SIGTERM"


def test_worker_runs_task_through_redis(worker: tuple[str, subprocess.Popen[bytes]]) -> None:
    queue, proc = worker
    payload = {"video_id": "v-1", "n": 3, "tags": ["a", "b"]}
    sent = ping.apply_async(args=[payload], queue=queue)
    try:
        result = sent.get(timeout=60)
    finally:
        sent.forget()  # the result key in Redis (celery-task-meta-<id>) is not named after the queue
    assert result["echo"] == payload
    assert result["pid"] == proc.pid, "the task did not run in the worker subprocess"


def test_json_only_serializer() -> None:
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]
    with pytest.raises(EncodeError):
        # A set is not JSON: with pickle allowed this would have been sent.
        ping.apply_async(args=[{"ids": {1, 2}}], queue="never-consumed")
