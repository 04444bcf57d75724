"""Decode untrusted media with PyAV: probe it, pick keyframes, extract 16 kHz mono audio.

Every entry point checks the configured limits before doing work proportional to the file, maps
FFmpeg's errors onto our typed `MediaError`s naming the file, and bounds decode time with a
deadline, so a hostile file can neither hang a consumer nor crash it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.encoders.errors import (
    CorruptMediaError,
    EmptyMediaError,
    MediaError,
    MediaLimitError,
    MissingExtraError,
    NoAudioStreamError,
    NoVideoStreamError,
    UnsupportedCodecError,
)
from vidsearch.encoders.media.keyframes import Candidate, Keyframe, select_keyframes, thumbnail
from vidsearch.ops.settings import MediaSettings

AUDIO_RATE = 16_000
MAX_BAD_PACKETS = 8

try:
    import av
except ImportError as exc:  # pragma: no cover - depends on the install
    raise MissingExtraError("av (PyAV)") from exc


@dataclass(frozen=True)
class MediaInfo:
    path: str
    size_bytes: int
    duration_s: float
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    video_codec: str | None = None
    audio_codec: str | None = None


@contextmanager
def open_media(path: str | Path, limits: MediaSettings) -> Iterator[Any]:
    """Open a container after the cheap checks; FFmpeg failures become CorruptMediaError."""
    p = Path(path)
    if not p.is_file():
        raise MediaError(p, "no such file")
    size = p.stat().st_size
    if size == 0:
        raise EmptyMediaError(p, "the file is empty (0 bytes)")
    if size > limits.max_file_bytes:
        raise MediaLimitError(p, f"{size} bytes is over the limit of {limits.max_file_bytes}")
    try:
        container = av.open(str(p), mode="r", timeout=limits.max_decode_s)
    except av.error.FFmpegError as exc:
        raise CorruptMediaError(p, f"not a readable media container ({exc.strerror or exc})") from exc
    try:
        yield container
    finally:
        container.close()


def _duration(container: Any) -> float:
    if container.duration:
        return float(container.duration) / av.time_base
    best = 0.0
    for stream in container.streams:
        if stream.duration and stream.time_base:
            best = max(best, float(stream.duration * stream.time_base))
    return best


def _check_codec(path: str | Path, stream: Any) -> str:
    ctx = stream.codec_context
    name = ctx.name if ctx is not None else None
    if not name or name == "none":
        tag = getattr(ctx, "codec_tag", None) or "unknown"
        raise UnsupportedCodecError(path, f"{stream.type} stream #{stream.index} uses a codec with no decoder here (tag {tag!r})")
    return str(name)


def probe(path: str | Path, limits: MediaSettings) -> MediaInfo:
    """Streams, codecs, size and duration; raises if any configured limit is exceeded."""
    with open_media(path, limits) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and audio is None:
            raise CorruptMediaError(path, "no audio or video stream")
        video_codec = _check_codec(path, video) if video is not None else None
        audio_codec = _check_codec(path, audio) if audio is not None else None
        info = MediaInfo(
            path=str(path),
            size_bytes=Path(path).stat().st_size,
            duration_s=_duration(container),
            has_video=video is not None,
            has_audio=audio is not None,
            width=int(video.codec_context.width or 0) if video is not None else 0,
            height=int(video.codec_context.height or 0) if video is not None else 0,
            fps=float(video.average_rate or 0) if video is not None else 0.0,
            video_codec=video_codec,
            audio_codec=audio_codec,
        )
    if info.duration_s > limits.max_duration_s:
        raise MediaLimitError(path, f"duration {info.duration_s:.0f}s is over the limit of {limits.max_duration_s:.0f}s")
    if info.width > limits.max_width or info.height > limits.max_height:
        raise MediaLimitError(
            path, f"resolution {info.width}x{info.height} is over the limit of {limits.max_width}x{limits.max_height}"
        )
    return info


def _frames(container: Any, stream: Any, path: str | Path, limits: MediaSettings) -> Iterator[Any]:
    """Decoded frames of one stream. A few damaged packets are skipped (real files have them);
    a stream that is mostly damaged, or yields nothing, is corrupt. Decode time is bounded."""
    deadline = time.monotonic() + limits.max_decode_s
    good = bad = 0
    last_error = ""
    for packet in container.demux(stream):
        if time.monotonic() > deadline:
            raise MediaLimitError(path, f"decoding took longer than {limits.max_decode_s:.0f}s")
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            bad += 1
            last_error = str(exc.strerror or exc)
            if bad > MAX_BAD_PACKETS and bad > good:
                break
            continue
        for frame in frames:
            good += 1
            yield frame
    if good == 0:
        raise CorruptMediaError(path, f"no {stream.type} frame could be decoded ({last_error or 'empty stream'})")
    if bad > MAX_BAD_PACKETS and bad > good:
        raise CorruptMediaError(path, f"{stream.type} stream is mostly damaged ({bad} bad packets, {good} good frames)")


def _frame_rgb(frame: Any, max_side: int) -> np.ndarray:
    w, h = frame.width, frame.height
    scale = min(1.0, max_side / max(w, h))
    tw, th = max(2, int(round(w * scale)) // 2 * 2), max(2, int(round(h * scale)) // 2 * 2)
    return frame.to_ndarray(format="rgb24", width=tw, height=th)


def keyframes(path: str | Path, limits: MediaSettings, info: MediaInfo | None = None) -> list[Keyframe]:
    """Keyframes by scene change, within [keyframe_min, keyframe_max], uniform fallback."""
    info = info or probe(path, limits)
    if not info.has_video:
        raise NoVideoStreamError(path, "audio-only input: there are no frames to index")
    interval = max(limits.keyframe_sample_s, info.duration_s / limits.keyframe_max_candidates)
    candidates: list[Candidate] = []
    next_t = 0.0
    last_t = 0.0
    with open_media(path, limits) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in _frames(container, stream, path, limits):
            t = float(frame.time) if frame.time is not None else last_t
            last_t = t
            if t + 1e-6 < next_t:
                continue
            rgb = _frame_rgb(frame, limits.frame_max_side)
            candidates.append(Candidate(t=t, rgb=rgb, thumb=thumbnail(rgb)))
            next_t = t + interval
    if info.duration_s > 2.0 and last_t < 0.5 * info.duration_s:
        raise CorruptMediaError(path, f"truncated: frames stop at {last_t:.1f}s of a declared {info.duration_s:.1f}s")
    return select_keyframes(
        candidates, limits.keyframe_min, limits.keyframe_max, limits.scene_threshold, limits.scene_relative
    )


def audio_16k(path: str | Path, limits: MediaSettings, info: MediaInfo | None = None) -> np.ndarray:
    """The first audio track as float32 mono at 16 kHz (what Whisper and VAD expect)."""
    info = info or probe(path, limits)
    if not info.has_audio:
        raise NoAudioStreamError(path, "video-only input: there is no audio track")
    resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
    chunks: list[np.ndarray] = []
    with open_media(path, limits) as container:
        stream = container.streams.audio[0]
        for frame in _frames(container, stream, path, limits):
            frame.pts = None  # let the resampler re-time; damaged timestamps must not stop it
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise CorruptMediaError(path, "the audio stream holds no decodable samples")
    return samples
