"""Decode untrusted media with PyAV: probe it, pick keyframes and shots, extract 16 kHz mono audio.

Every entry point checks the configured limits before doing work proportional to the file, maps
every failure of FFmpeg, PyAV or the OS onto our typed `MediaError`s naming the file, and bounds
decode time with a deadline, so a hostile file can neither hang a consumer nor crash it.

FFmpeg may only read the one local file it was given: the `file` protocol is the only one allowed,
and the demuxer FFmpeg picks from the content must be on an allow-list of self-contained
containers. Both are enforced inside `avformat_open_input`, after probing and before the demuxer
reads its header, so a playlist (hls), a concat script or an image sequence is refused before it
can open anything it names.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from vidsearch.core.errors import ConfigError
from vidsearch.core.settings import MediaSettings
from vidsearch.encoders.errors import (
    CorruptMediaError,
    EmptyMediaError,
    ForbiddenContainerError,
    MediaError,
    MediaLimitError,
    MissingExtraError,
    NoAudioStreamError,
    NoVideoStreamError,
    UnreadableMediaError,
    UnsupportedCodecError,
)
from vidsearch.encoders.media.keyframes import (
    Candidate,
    Keyframe,
    Shot,
    detect_shots,
    select_keyframes,
    thumbnail,
)

AUDIO_RATE = 16_000
MAX_BAD_PACKETS = 8
# Demuxers that read other files or URLs named in the input (playlists, manifests, scripts,
# filter graphs, image sequences, session descriptions) or that are no video at all. Refused even
# if a configuration lists them; every `*_pipe` (single-image) demuxer is refused too.
NEVER_ALLOWED = frozenset({
    "hls", "applehttp", "dash", "webm_dash_manifest", "concat", "ffmetadata", "lavfi", "tee", "data",
    "image2", "sdp", "rtp", "rtsp", "sap", "mpjpeg", "srt", "ass", "webvtt", "subviewer", "microdvd", "sami",
    "jacosub", "mpl2", "pjs", "realtext", "stl", "subviewer1", "vplayer", "lrc", "scc", "tty", "bin", "idf",
})
PROTOCOLS = "file"  # the local file only: no http, concat, crypto, data:, pipe or fd

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


def _refused(name: str) -> bool:
    return name in NEVER_ALLOWED or name.endswith("_pipe")


def allowed_formats(limits: MediaSettings) -> tuple[str, ...]:
    """The configured demuxer allow-list; a configuration naming a refused demuxer is broken."""
    bad = sorted(n for n in limits.container_formats if _refused(n))
    if bad or not limits.container_formats:
        raise ConfigError(f"media.container_formats may not be empty or name {', '.join(bad)}: they open other files")
    return limits.container_formats


# Leading bytes of the allowed containers. Used only to word an error: FFmpeg answers EINVAL both
# when its format allow-list refuses the probed demuxer and (rarely) when an allowed demuxer meets
# a damaged header, and does not say which; a file that starts like an allowed container is called
# damaged, anything else a refused format. The security check itself is FFmpeg's.
_MOV_ATOMS = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot", b"uuid")


def _looks_like(head: bytes) -> str | None:
    """The container the first bytes announce, by its FFmpeg demuxer name; None if unknown."""
    if head[4:8] in _MOV_ATOMS:
        return "mov"
    if head.startswith(b"RIFF"):
        return {b"AVI ": "avi", b"AVIX": "avi", b"WAVE": "wav"}.get(head[8:12])
    for magic, name in ((b"\x1a\x45\xdf\xa3", "matroska"), (b"FLV", "flv"), (b"OggS", "ogg"), (b"ID3", "mp3")):
        if head.startswith(magic):
            return name
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "mpegts"
    return None


_FS_ERRNOS = (errno.EACCES, errno.ENAMETOOLONG, errno.EISDIR, errno.ELOOP, errno.ENOENT)
# Text formats that name other files. FFmpeg's allow-list refuses them anyway; recognising them
# first gives the clearest error whatever the file is called (FFmpeg's hls probe, for one, only
# answers for a .m3u8 name and calls the same playlist named .mp4 "invalid data").
_REFERENCING_HEADS = (b"#EXTM3U", b"ffconcat version", b"<?xml", b"<MPD", b"v=0")


def _is_file_system(exc: BaseException) -> TypeGuard[OSError]:
    """An FFmpeg error that is the file system's answer (PyAV's OSError subclasses carry errno)."""
    return isinstance(exc, OSError) and exc.errno in _FS_ERRNOS


def _os_error(path: str | Path, exc: OSError) -> MediaError:
    code = exc.errno if isinstance(exc.errno, int) else None
    if code == errno.ENOENT:
        return MediaError(path, "no such file")
    name = errno.errorcode.get(code or 0, "OSError")
    return UnreadableMediaError(path, f"cannot read the file: {exc.strerror or exc} ({name})")


@contextmanager
def media_errors(path: str | Path) -> Iterator[None]:
    """Turn whatever FFmpeg, PyAV, numpy or the OS raise while handling `path` into a typed
    `MediaError` naming it. A hostile file can make PyAV raise many built-in exceptions (a bad
    time base divides by zero, a huge size field overflows, non-UTF-8 text fails to decode); all
    of them mean "this file is bad", never "the service is broken"."""
    try:
        yield
    except MediaError:
        raise
    except UnicodeDecodeError as exc:  # a ValueError: must come first
        raise CorruptMediaError(path, f"text in the container is not valid {exc.encoding} ({exc.reason})") from exc
    except av.error.DecoderNotFoundError as exc:
        raise UnsupportedCodecError(path, f"no decoder for a stream ({exc.strerror or exc})") from exc
    except av.error.FFmpegError as exc:
        if _is_file_system(exc):
            raise _os_error(path, exc) from exc
        raise CorruptMediaError(path, f"damaged or undecodable data ({exc.strerror or exc})") from exc
    except OSError as exc:
        raise _os_error(path, exc) from exc
    except MemoryError as exc:
        raise MediaLimitError(path, "decoding needs more memory than is available") from exc
    except RecursionError as exc:
        raise CorruptMediaError(path, "nesting in the container is too deep") from exc
    except (ValueError, LookupError, ArithmeticError) as exc:  # incl. IndexError, ZeroDivision, Overflow
        raise CorruptMediaError(path, f"damaged data ({type(exc).__name__}: {exc})") from exc


def _open(p: Path, limits: MediaSettings) -> Any:
    formats = ",".join(allowed_formats(limits))
    with open(p, "rb") as fh:
        head = fh.read(512)
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(_REFERENCING_HEADS):
        raise ForbiddenContainerError(p, "a playlist, manifest or script that names other files is refused; send the media itself")
    try:
        container = av.open(
            "file:" + os.path.abspath(p),  # never parsed as another protocol, whatever the name holds
            mode="r",
            timeout=limits.max_decode_s,
            # format_whitelist is checked after probing and before the demuxer's read_header, which
            # is where hls/concat would open what they reference. mov's external references
            # (enable_drefs) are off by default and stay off.
            container_options={"protocol_whitelist": PROTOCOLS, "format_whitelist": formats},
            metadata_errors="replace",  # a non-UTF-8 title is no reason to refuse a video
        )
    except av.error.ArgumentError as exc:  # EINVAL: the format allow-list refused it (see above)
        looks = _looks_like(head)
        if looks in formats.split(","):
            raise CorruptMediaError(p, f"not a readable media container (damaged {looks} header: {exc.strerror or exc})") from exc
        raise ForbiddenContainerError(
            p, f"the content{f' ({looks})' if looks else ''} is not an allowed container format ({formats}); "
            "playlists, concat scripts and image sequences are refused") from exc
    except av.error.FFmpegError as exc:
        if _is_file_system(exc):
            raise _os_error(p, exc) from exc
        raise CorruptMediaError(p, f"not a readable media container ({exc.strerror or exc})") from exc
    name = container.format.name or ""
    parts = set(name.split(","))
    if not parts & set(formats.split(",")) or any(_refused(n) for n in parts):  # belt and braces
        container.close()
        raise ForbiddenContainerError(p, f"container format {name!r} is not allowed")
    return container


@contextmanager
def open_media(path: str | Path, limits: MediaSettings) -> Iterator[Any]:
    """Open a container after the cheap checks (a regular, non-empty file under the size limit),
    with the protocol and format allow-lists; every failure inside the block is a MediaError."""
    p = Path(path)
    with media_errors(p):
        if not p.is_file():
            raise MediaError(p, "no such file")
        size = p.stat().st_size
        if size == 0:
            raise EmptyMediaError(p, "the file is empty (0 bytes)")
        if size > limits.max_file_bytes:
            raise MediaLimitError(p, f"{size} bytes is over the limit of {limits.max_file_bytes}")
        container = _open(p, limits)
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
    with media_errors(path):
        return _probe(path, limits)


def _probe(path: str | Path, limits: MediaSettings) -> MediaInfo:
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


@dataclass(frozen=True)
class FrameSelection:
    """What one pass over the video stream yields: the keyframes to encode and every shot."""

    keyframes: list[Keyframe]
    shots: list[Shot]


def keyframes(path: str | Path, limits: MediaSettings, info: MediaInfo | None = None) -> list[Keyframe]:
    """Keyframes by scene change, within [keyframe_min, keyframe_max], uniform fallback."""
    return frames_and_shots(path, limits, info).keyframes


def frames_and_shots(path: str | Path, limits: MediaSettings, info: MediaInfo | None = None) -> FrameSelection:
    """Keyframes, and the shots (spans between hard cuts) from the same candidate frames and the
    same scene threshold; the shots are all the cuts, however many keyframes are kept."""
    with media_errors(path):
        info = info or probe(path, limits)
        candidates, last_t = _candidates(path, limits, info)
        frames = select_keyframes(
            candidates, limits.keyframe_min, limits.keyframe_max, limits.scene_threshold, limits.scene_relative
        )
        shots = detect_shots(candidates, max(info.duration_s, last_t), limits.scene_threshold, limits.scene_relative)
        return FrameSelection(frames, shots)


def _candidates(path: str | Path, limits: MediaSettings, info: MediaInfo) -> tuple[list[Candidate], float]:
    """Frames sampled every `keyframe_sample_s` (at most `keyframe_max_candidates`), and the time
    of the last decoded frame."""
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
    return candidates, last_t


def audio_16k(path: str | Path, limits: MediaSettings, info: MediaInfo | None = None) -> np.ndarray:
    """The first audio track as float32 mono at 16 kHz (what Whisper and VAD expect)."""
    with media_errors(path):
        return _audio_16k(path, limits, info or probe(path, limits))


def _audio_16k(path: str | Path, limits: MediaSettings, info: MediaInfo) -> np.ndarray:
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


def frame_at(path: str | Path, t: float, limits: MediaSettings, max_side: int = 640) -> np.ndarray:
    """One RGB frame: the first at or after `t` seconds (the last one when `t` is past the end),
    under the same limits and allow-lists as ingestion. Seeks to the keyframe before `t`, so the
    work is one GOP, and `limits.max_decode_s` bounds it."""
    with media_errors(path):
        info = probe(path, limits)
        if not info.has_video:
            raise NoVideoStreamError(path, "audio-only input: there are no frames")
        with open_media(path, limits) as container:
            stream = container.streams.video[0]
            if t > 0 and stream.time_base:
                container.seek(int(t / stream.time_base), stream=stream, any_frame=False, backward=True)
            chosen = None
            for frame in _frames(container, stream, path, limits):
                chosen = frame
                if frame.time is None or frame.time >= t - 1e-3:
                    break
            if chosen is None:  # pragma: no cover - _frames raises when nothing decodes
                raise CorruptMediaError(path, "no video frame could be decoded")
            return _frame_rgb(chosen, max_side)
