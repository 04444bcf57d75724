"""The Celery application: Redis as broker and result backend, JSON only (never pickle).

Start a worker with `vidsearch workers start` (or `celery -A vidsearch.ops.celery_app worker`).
Tasks acknowledge late and are rejected back to the queue if their worker dies, so a killed
worker's task runs again elsewhere; tasks must therefore be idempotent.
"""

from __future__ import annotations

from celery import Celery

from vidsearch.ops.settings import RedisSettings, load_settings

TASK_MODULES = ["vidsearch.ops.tasks.health"]


def redis_url(settings: RedisSettings) -> str:
    """The Redis URL with the password (if configured separately) folded in."""
    if settings.password is None:
        return settings.url
    scheme, rest = settings.url.split("://", 1)
    return f"{scheme}://:{settings.password.get_secret_value()}@{rest.split('@')[-1]}"


def make_celery(settings: RedisSettings) -> Celery:
    url = redis_url(settings)
    app = Celery("vidsearch", broker=url, backend=url, include=TASK_MODULES)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        result_expires=24 * 3600,
        task_default_queue="vidsearch",
        worker_hijack_root_logger=False,
    )
    return app


app = make_celery(load_settings().redis)
