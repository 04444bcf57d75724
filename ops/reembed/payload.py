"""What a re-embedding task may carry through the broker, and how a worker gets its settings.

A worker builds its settings from its own configuration (`load_settings()`: its environment and
config file), never from settings shipped in a message: the broker and result backend are a
Redis, and a tampered Redis must not be able to redirect a worker's reads or writes (another
index, another feature store, another media root, other credentials). A task therefore carries
ids only: the job id, the source and target version ids, the slice numbers, each checked against
a strict pattern, plus the catalogue's two names (`indexer.index_prefix`/`collection_prefix`).

Those two names are an *assertion*, not an override: a worker refuses a task for a catalogue it
is not configured for, with a `ConfigError` that names the fix, instead of silently working on
its own catalogue. We chose this over letting an allow-listed set of names override the worker's
settings because an override would still let a forged message point writes at another
catalogue's indices, and because the feature store and media roots (which tests and benches
also scope per run) can only safely come from the worker's configuration anyway. A test or bench
that scopes a catalogue starts its workers with that catalogue's settings in their environment:
`worker_env(settings)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from vidsearch.core.errors import ConfigError, DataError
from vidsearch.core.settings import Settings, load_settings

# OpenSearch index names (lowercase, no leading '-' or '_') and Milvus collection names.
_CATALOGUE_NAMES: dict[str, re.Pattern[str]] = {
    "index_prefix": re.compile(r"[a-z0-9][a-z0-9_-]{0,99}"),
    "collection_prefix": re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}"),
}
_JOB_ID = re.compile(r"[0-9a-f]{6,64}")
_VERSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
MAX_SLICES = 1024
# The settings sections that define which catalogue a worker serves and how it re-embeds it.
WORKER_SECTIONS = ("indexer", "reembed")


class TaskPayloadError(DataError):
    """A re-embedding task message that is malformed or contradicts its job record."""

    stage = "reembed-task"


def catalogue(settings: Settings) -> dict[str, str]:
    """The names that identify a catalogue; sent with every task so a worker can check them."""
    return {name: getattr(settings.indexer, name) for name in _CATALOGUE_NAMES}


def check_catalogue(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or set(value) != set(_CATALOGUE_NAMES):
        raise TaskPayloadError(f"task catalogue must name exactly {sorted(_CATALOGUE_NAMES)}, got {value!r:.200}")
    for name, pattern in _CATALOGUE_NAMES.items():
        if not isinstance(value[name], str) or not pattern.fullmatch(value[name]):
            raise TaskPayloadError(f"task catalogue {name} {value[name]!r:.120} is not a valid name")
    return dict(value)


def check_ids(job_id: Any, source: Any = None, target: Any = None, slice_id: Any = 0, slices: Any = 1) -> None:
    """Raise TaskPayloadError unless every id is well formed (they become Redis keys and index names)."""
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise TaskPayloadError(f"bad job id {job_id!r:.80}")
    for what, version in (("source", source), ("target", target)):
        if version is not None and (not isinstance(version, str) or not _VERSION_ID.fullmatch(version)):
            raise TaskPayloadError(f"bad {what} version id {version!r:.140}")
    if not (type(slices) is int and type(slice_id) is int and 1 <= slices <= MAX_SLICES and 0 <= slice_id < slices):
        raise TaskPayloadError(f"bad slice {slice_id!r:.20} of {slices!r:.20}")


def worker_settings(task_catalogue: Any) -> Settings:
    """This worker's own settings, after checking that the task is for the catalogue it serves."""
    wanted = check_catalogue(task_catalogue)
    settings = load_settings()
    own = catalogue(settings)
    if wanted != own:
        raise ConfigError(f"this worker serves the catalogue {own} but received a task for {wanted}: start the "
                          "workers of that catalogue with its settings (VIDSEARCH_INDEXER__INDEX_PREFIX, "
                          "VIDSEARCH_INDEXER__COLLECTION_PREFIX, ...) on a queue of their own")
    return settings


def worker_env(settings: Settings) -> dict[str, str]:
    """Environment variables that make a worker process (started by the caller) serve the same
    catalogue as `settings`: every field of the indexer and reembed sections. Secrets are not in
    those sections; the worker keeps reading them from its own environment or config file."""
    env: dict[str, str] = {}
    for section in WORKER_SECTIONS:
        for field, value in getattr(settings, section).model_dump(mode="json").items():
            if value is None:
                continue  # the default of every optional field; "null" does not parse for a Path
            text = value if isinstance(value, str) else json.dumps(value)
            env[f"VIDSEARCH_{section.upper()}__{field.upper()}"] = text
    return env
