"""Errors of the local stack (install, start, check, stop): an operator's problem, never an event's."""

from __future__ import annotations

from vidsearch.core.errors import VidsearchError


class StackError(VidsearchError):
    """The local stack could not be installed, started, checked or stopped."""

    def __init__(self, service: str, message: str, log_tail: str | None = None) -> None:
        self.service = service
        self.message = message
        self.log_tail = log_tail
        text = f"{service}: {message}"
        if log_tail:
            text += f"\n--- last lines of the {service} log ---\n{log_tail}"
        super().__init__(text)


class PortInUseError(StackError):
    """A port the stack needs is held by a process that is not ours."""


class JavaNotFoundError(StackError):
    """No JDK of the required major version was found."""


class DownloadError(StackError):
    """An artifact could not be fetched or failed its checksum."""


class ServiceStartError(StackError):
    """A service exited or never became healthy within its timeout."""
