"""The root of every vidsearch error, and the errors of operations (config, local stack).

Callers can catch `VidsearchError` for anything raised on purpose by vidsearch; each subpackage
adds its own subclasses in its own `exceptions.py`/`errors.py`.
"""

from __future__ import annotations


class VidsearchError(Exception):
    """Base of all errors raised deliberately by vidsearch."""


class ConfigError(VidsearchError):
    """Settings are missing, malformed or contradictory."""


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
