"""Keyframe thumbnails for the results page, decoded on demand from the video's media.

Only local media inside the configured media roots is opened (the same policy as ingestion, checked
again at request time: a stored `media_uri` can never make the API read an arbitrary file), and it
is decoded by the ingestion decoder: the same container allow-list (no playlist or concat script
can make FFmpeg open another file), the same size, resolution and duration limits, and a decode
deadline of `MediaSettings.thumbnail_max_decode_s`. Every failure is a typed `MediaError`.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from vidsearch.connector.media_policy import resolve_media_uri
from vidsearch.core.settings import MediaPolicySettings, MediaSettings

WIDTH = 240


def media_path(uri: str, policy: MediaPolicySettings) -> Path:
    """The local file of a stored `media_uri` (a path or a `file://` URI), re-checked against the
    media policy now; raises `MediaPolicyError` for anything outside the roots or not local."""
    return resolve_media_uri(uri, policy)


def thumbnail_limits(limits: MediaSettings) -> MediaSettings:
    """The ingestion limits with the (much shorter) per-request decode deadline."""
    return limits.model_copy(update={"max_decode_s": min(limits.max_decode_s, limits.thumbnail_max_decode_s)})


@lru_cache(maxsize=512)
def thumbnail_jpeg(path: str, t: float, mtime_ns: int, limits: MediaSettings | None = None) -> bytes:
    """A JPEG of the frame at `t` seconds, at most 240x180. `mtime_ns` is part of the cache key
    only, so a replaced file is decoded again. `limits` should be the API's `settings.media`;
    left out, the default MediaSettings apply (never no limits). Raises a `MediaError` subclass
    (`MediaLimitError` for an over-limit or too-slow file, `ForbiddenContainerError`,
    `CorruptMediaError`, ...) naming the file."""
    from PIL import Image

    from vidsearch.encoders.media.decode import frame_at

    rgb = frame_at(path, t, thumbnail_limits(limits or MediaSettings()), max_side=2 * WIDTH)
    img = Image.fromarray(rgb)
    img.thumbnail((WIDTH, WIDTH * 3 // 4))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=80)
    return buf.getvalue()
