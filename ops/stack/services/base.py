"""The contract every local-stack service fulfils; the manager does the rest (ports, process,
waiting, logs), so a service only says how to install, launch and probe itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from vidsearch.ops.stack.process import Launch


@dataclass
class Health:
    healthy: bool
    version: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"healthy": self.healthy, "version": self.version, **self.detail}
        if self.error:
            out["error"] = self.error
        return out


class Service(Protocol):
    """One node of a service: its own process, ports and data folder. `kind` is the service it
    belongs to (`kafka`), `name` the node (`kafka` for the first, `kafka-2`, ...)."""

    name: str
    kind: str

    def ports(self) -> dict[str, int]:
        """Loopback ports the service listens on, by role; empty for an embedded service."""

    def install(self) -> None:
        """Fetch and unpack what the service needs into the cache; idempotent and cheap when done."""

    def launch(self) -> Launch | None:
        """Write config, prepare storage and say how to start; None when nothing runs (embedded)."""

    def probe(self) -> Health:
        """A real request to the service; never raises."""
