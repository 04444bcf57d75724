"""Keyframe thumbnails for the results page, decoded on demand from the video's media.

Only local media inside the configured media roots is opened (the same policy as ingestion), so a
stored `media_uri` can never make the API read an arbitrary file.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from vidsearch.connector.media_policy import resolve_local
from vidsearch.ops.settings import MediaPolicySettings

WIDTH = 240


def media_path(uri: str, policy: MediaPolicySettings) -> Path:
    """Raises the media policy's typed error for anything outside the roots or not local."""
    return resolve_local(uri, policy)


@lru_cache(maxsize=512)
def thumbnail_jpeg(path: str, t: float, mtime_ns: int) -> bytes:
    import av
    from PIL import Image

    with av.open(path) as container:
        stream = container.streams.video[0]
        if t > 0 and stream.time_base:
            container.seek(int(t / stream.time_base), stream=stream, any_frame=False, backward=True)
        frame = None
        for frame in container.decode(stream):
            if frame.time is None or frame.time >= t - 1e-3:
                break
        if frame is None:
            raise ValueError("no decodable frame")
        img: Image.Image = frame.to_image()
    img.thumbnail((WIDTH, WIDTH * 3 // 4))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=80)
    return buf.getvalue()
