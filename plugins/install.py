"""`vidsearch plugins install`: what vidsearch puts into each configured search engine (index
templates, search pipelines, schemas, the current model version behind the alias). Each backend
knows its own engine (`VideoStore.install`); running it twice changes nothing and says so.
"""

from __future__ import annotations

from typing import Any

from vidsearch.core.settings import Settings
from vidsearch.plugins.backends import configured_stores


def install_all(settings: Settings) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for store in configured_stores(settings, timeout_s=60.0):
        try:
            report[store.name] = store.install(settings.indexer.model_version)
        finally:
            store.close()
    return report
