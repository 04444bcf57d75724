"""Errors of media decoding and the encoders. Each names the file and what was wrong with it,
so a dead-letter record or a log line is enough to act on."""

from __future__ import annotations

from pathlib import Path

from vidsearch.core.errors import DataError, DeploymentError, VidsearchError


class EncoderError(VidsearchError):
    """Base of every encoder-side failure. Never caught as such: bad media (`MediaError`, a data
    error) and a broken installation (`MissingExtraError`, `ModelLoadError`, deployment errors)
    have different rules, so callers catch those."""


class MissingExtraError(EncoderError, DeploymentError):
    """An optional dependency is not installed."""

    def __init__(self, module: str, extra: str = "encoders") -> None:
        super().__init__(f"{module} is not installed; pip install 'vidsearch[{extra}]'")


class ModelLoadError(EncoderError, DeploymentError):
    """Packaged weights are missing or unreadable."""


class MediaError(EncoderError, DataError):
    """A media file cannot be used; `reason` says why."""

    stage = "decode"

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class EmptyMediaError(MediaError):
    """The file has no bytes."""


class CorruptMediaError(MediaError):
    """Not a media container, a damaged header, undecodable or truncated data."""


class UnsupportedCodecError(MediaError):
    """The stream's codec has no decoder here."""


class NoVideoStreamError(MediaError):
    """Audio-only input where frames were needed."""


class NoAudioStreamError(MediaError):
    """Video-only input where sound was needed."""


class MediaLimitError(MediaError):
    """Over a configured limit: size, duration, resolution or decode time."""


class ForbiddenContainerError(MediaError):
    """The content is a container format that is not allowed (a playlist, a concat script, an
    image sequence, ...). Refused before FFmpeg follows any reference it holds: convert the media
    to a single self-contained file (mp4, mkv, ...) and send that."""


class UnreadableMediaError(MediaError):
    """The file system refused to read the file (permission, a name too long, a symlink loop, a
    directory): the bytes were never looked at, so fix the file or its path, not the encoding."""
