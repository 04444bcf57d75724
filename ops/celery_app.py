"""The Celery application: Redis as broker and result backend, JSON only (never pickle).

Start a worker with `vidsearch workers start` (or `celery -A vidsearch.ops.celery_app worker`).
Tasks acknowledge late and are rejected back to the queue if their worker dies, so a killed
worker's task runs again elsewhere; tasks must therefore be idempotent.
"""

from __future__ import annotations

from celery import Celery

from vidsearch.core.settings import RedisSettings, ReembedSettings, load_settings

TASK_MODULES = ["vidsearch.ops.tasks.health", "vidsearch.ops.tasks.reembed", "vidsearch.ops.tasks.maintenance"]


def redis_url(settings: RedisSettings) -> str:
    """The Redis URL with the password (if configured separately) folded in."""
    if settings.password is None:
        return settings.url
    scheme, rest = settings.url.split("://", 1)
    return f"{scheme}://:{settings.password.get_secret_value()}@{rest.split('@')[-1]}"


def beat_schedule(cfg: ReembedSettings) -> dict:
    """Intervals from settings (`VIDSEARCH_REEMBED__NCL_INTERVAL_S`, ...); run `celery beat`."""
    return {
        "ncl-recompute": {"task": "vidsearch.maintenance.ncl_recompute", "schedule": cfg.ncl_interval_s},
        "consistency-check": {"task": "vidsearch.maintenance.consistency_check", "schedule": cfg.consistency_interval_s},
        "cleanup-versions": {"task": "vidsearch.maintenance.cleanup_versions", "schedule": cfg.cleanup_interval_s},
    }


def make_celery(settings: RedisSettings, reembed: ReembedSettings | None = None) -> Celery:
    reembed = reembed or ReembedSettings()
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
        # an unacknowledged task (its worker was killed) goes back to the queue after this long
        broker_transport_options={"visibility_timeout": reembed.visibility_timeout_s},
        result_backend_transport_options={"visibility_timeout": reembed.visibility_timeout_s},
        beat_schedule=beat_schedule(reembed),
    )
    return app


_settings = load_settings()
app = make_celery(_settings.redis, _settings.reembed)
