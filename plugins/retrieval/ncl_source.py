"""The NCL state the indexer uses for new videos' biases, reloaded when a recompute replaces it."""

from __future__ import annotations

import logging

from vidsearch.core.settings import Settings
from vidsearch.plugins.retrieval.ncl_index import NclState

log = logging.getLogger(__name__)


class NclSource:
    def __init__(self, settings: Settings) -> None:
        from vidsearch.plugins.retrieval.ncl_jobs import state_path

        self.path = state_path(settings)
        self._mtime: int | None = None
        self._state: NclState | None = None

    def __call__(self) -> NclState | None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if mtime != self._mtime:
            try:
                self._state = NclState.load(self.path)
            except (OSError, ValueError, KeyError) as exc:  # a torn or foreign file: no bias, logged
                log.warning("ignoring NCL state %s: %s", self.path, exc)
                self._state = None
            self._mtime = mtime
        return self._state
