"""Read and write the datasets' videos with PyAV: one reader, one writer, one re-encoder.

Every dataset builder writes the same kind of file (MPEG-4 part 2 video in mp4, optional AAC mono
audio), and the copy benchmark needs frames on an exact grid of `fps` so that ground-truth times
are frame indices divided by `fps` in every video. Reading goes through the media policy of
`encoders/media/decode.py` (allowed containers, the local file only, typed `MediaError`s), the
same door ingestion uses, even though the inputs here are packaged files.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.core.settings import MediaSettings

AUDIO_RATE = 16_000
CODEC = "mpeg4"
_EPS = 1e-6


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) scaled down (never up) so the longer side is at most `max_side`, both even (the
    encoder's yuv420p needs even sides)."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _resampled(decoded: Iterable[tuple[float, Any]], fps: float, last_span: float) -> Iterator[Any]:
    """The frame on screen at each time k / fps (k = 0, 1, ...): the last decoded frame whose
    time is at or before it. Times count from the first frame; the last frame stays on screen for
    `last_span` seconds (one source frame)."""
    step = 1.0 / fps
    prev: Any = None
    prev_t = t0 = 0.0
    k = 0
    for t, frame in decoded:
        if prev is None:
            t0 = t
        t -= t0
        while prev is not None and k * step < t - _EPS:
            yield prev
            k += 1
        prev, prev_t = frame, t
    while prev is not None and k * step < prev_t + last_span - _EPS:
        yield prev
        k += 1


def read_frames(path: str | Path, fps: float | None, max_side: int,
                limits: MediaSettings | None = None) -> tuple[np.ndarray, float]:
    """All frames of the first video stream as one (n, h, w, 3) uint8 RGB array, resampled to
    `fps` (None keeps the stream's own rate) and scaled down to `max_side`; returns the frames
    and their rate."""
    from vidsearch.encoders.media.decode import media_errors, open_media

    with media_errors(path), open_media(path, limits or MediaSettings()) as container:
        stream = container.streams.video[0]
        native = float(stream.average_rate or 0) or 25.0
        width, height = fit_size(stream.codec_context.width, stream.codec_context.height, max_side)

        def rgb(frame: Any) -> np.ndarray:
            return frame.to_ndarray(format="rgb24", width=width, height=height)

        decoded = ((float(f.time) if f.time is not None else i / native, f) for i, f in enumerate(container.decode(stream)))
        frames: list[np.ndarray] = []
        if fps is None:
            frames = [rgb(f) for _, f in decoded]
            rate = native
        else:
            shown: Any = None
            shown_rgb = np.zeros(0, np.uint8)
            for f in _resampled(decoded, fps, 1.0 / native):
                if f is not shown:  # a frame held for several output times is converted once
                    shown, shown_rgb = f, rgb(f)
                frames.append(shown_rgb)
            rate = float(fps)
    if not frames:
        from vidsearch.encoders.errors import CorruptMediaError

        raise CorruptMediaError(path, "no video frame could be decoded")
    return np.stack(frames), rate


def _rate(fps: float | Fraction) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def _encode(container: Any, frames: Iterable[np.ndarray], fps: float | Fraction, bitrate: int | None,
            audio: np.ndarray | None, audio_rate: int, codec: str = CODEC) -> None:
    import av

    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("no frames to write")
    # x264 (only used to damage frames) is run on one thread without its rate-control lookahead:
    # with either, the same frames come out differently from run to run.
    options = {"threads": "1", "rc-lookahead": "0"} if codec == "libx264" else None
    video = container.add_stream(codec, rate=_rate(fps), options=options)
    video.width, video.height, video.pix_fmt = first.shape[1], first.shape[0], "yuv420p"
    if bitrate is not None:
        video.bit_rate = int(bitrate)
    track = None
    if audio is not None:
        track = container.add_stream("aac", rate=audio_rate)
        track.layout = "mono"
    for rgb in _chain(first, it):
        for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    if track is not None and audio is not None:
        for start in range(0, len(audio), 1024):
            frame = av.AudioFrame.from_ndarray(audio[start:start + 1024].reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = audio_rate, start, Fraction(1, audio_rate)
            for packet in track.encode(frame):
                container.mux(packet)
        for packet in track.encode():
            container.mux(packet)


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def write_mp4(out: Path, frames: Iterable[np.ndarray], fps: float | Fraction, bitrate: int | None = None,
              audio: np.ndarray | None = None, audio_rate: int = AUDIO_RATE) -> Path:
    """Write `out`: MPEG-4 video (yuv420p, the frames' size) at `fps`, the encoder's default
    bitrate unless `bitrate` (bits/s) is given, and AAC mono audio when `audio` (int16 samples at
    `audio_rate`) is given. Frames may be a generator: they are encoded as they come."""
    import av

    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), mode="w") as container:
        _encode(container, frames, fps, bitrate, audio, audio_rate)
    return out


def reencode(frames: np.ndarray, fps: float, bitrate: int, codec: str = "libx264") -> np.ndarray:
    """The frames after a round trip through `codec` at `bitrate` bits/s: the blocking and
    smearing of a low-bitrate re-upload; same count and size, in memory. x264 by default because
    it holds a low bitrate (FFmpeg's MPEG-4 encoder bottoms out at its largest quantiser, barely
    above what the datasets' files already use, so a round trip through it changes almost nothing)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        _encode(container, frames, fps, bitrate, None, AUDIO_RATE, codec)
    buf.seek(0)
    with av.open(buf, mode="r") as container:
        out = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if len(out) != len(frames):  # the encoders keep every frame; anything else is a bug
        raise RuntimeError(f"re-encoding returned {len(out)} frames for {len(frames)}")
    return np.stack(out)
