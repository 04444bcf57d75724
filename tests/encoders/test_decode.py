"""Decoding real clips, and every hostile input raising its typed error in bounded time."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from vidsearch.encoders.errors import (
    CorruptMediaError,
    EmptyMediaError,
    MediaError,
    MediaLimitError,
    NoAudioStreamError,
    NoVideoStreamError,
    UnsupportedCodecError,
)
from vidsearch.encoders.media.decode import AUDIO_RATE, audio_16k, keyframes, probe
from vidsearch.ops.datasets.clips import Clip, librivox_transcripts
from vidsearch.ops.settings import Settings

pytestmark = [pytest.mark.models, pytest.mark.timeout(60)]


def test_every_real_clip_decodes_sanely(clips: list[Clip], settings: Settings) -> None:
    limits = settings.media
    for c in clips:
        info = probe(c.path, limits)
        frames = keyframes(c.path, limits, info)
        times = [k.t for k in frames]
        assert limits.keyframe_min <= len(frames) <= limits.keyframe_max, (c.path.name, times)
        assert times == sorted(times) and len(set(times)) == len(times), (c.path.name, times)
        assert times[0] < 1.0 and 0 <= times[-1] <= info.duration_s + 0.5, (c.path.name, times, info.duration_s)
        for k in frames:
            assert k.rgb.dtype == np.uint8 and k.rgb.ndim == 3 and k.rgb.shape[2] == 3
            assert max(k.rgb.shape[:2]) <= limits.frame_max_side
        if info.has_audio:
            samples = audio_16k(c.path, limits, info)
            assert samples.dtype == np.float32
            assert abs(samples.size / AUDIO_RATE - info.duration_s) < 0.1 * info.duration_s + 0.5, c.path.name
            assert np.isfinite(samples).all() and np.abs(samples).max() <= 1.01


def test_scene_changes_are_found_in_a_cut_clip(clip, settings: Settings) -> None:
    """Megamind.avi is a trailer with hard cuts: keyframes come from scene changes, not the fallback."""
    frames = keyframes(clip("Megamind.avi"), settings.media)
    assert sum(k.reason == "scene" for k in frames) >= 4


def test_static_clip_falls_back_to_uniform(clip, settings: Settings) -> None:
    """world.mp4 barely changes: the minimum count is met by uniform sampling over the clip."""
    frames = keyframes(clip("world.mp4"), settings.media)
    assert len(frames) == settings.media.keyframe_min
    assert any(k.reason == "uniform" for k in frames)
    assert frames[-1].t > 0.8 * probe(clip("world.mp4"), settings.media).duration_s


def test_video_only_has_no_audio(clip, settings: Settings) -> None:
    with pytest.raises(NoAudioStreamError, match="muted_b.mp4"):
        audio_16k(clip("muted_b.mp4"), settings.media)


def test_audio_only_has_no_frames(settings: Settings) -> None:
    wav = librivox_transcripts()[0][0]
    assert audio_16k(wav, settings.media).size > AUDIO_RATE
    with pytest.raises(NoVideoStreamError, match="audio-only"):
        keyframes(wav, settings.media)


def test_empty_file(tmp_path: Path, settings: Settings) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(EmptyMediaError, match="empty.mp4"):
        probe(empty, settings.media)


def test_random_bytes_named_mp4(tmp_path: Path, settings: Settings) -> None:
    fake = tmp_path / "random.mp4"
    fake.write_bytes(os.urandom(256 * 1024))
    with pytest.raises(CorruptMediaError, match="random.mp4"):
        keyframes(fake, settings.media)


def test_not_a_file(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(MediaError, match="no such file"):
        probe(tmp_path / "missing.mp4", settings.media)
    with pytest.raises(MediaError, match="no such file"):
        probe(tmp_path, settings.media)


@pytest.mark.parametrize("name", ["world.mp4", "bikes.mp4"])
def test_truncated_file(name: str, clip, tmp_path: Path, settings: Settings) -> None:
    """A third of the bytes: either the index is gone (bikes) or the frames stop early (world)."""
    data = clip(name).read_bytes()
    cut = tmp_path / f"cut-{name}"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptMediaError, match=f"cut-{name}"):
        keyframes(cut, settings.media)


def test_unsupported_codec(clip, tmp_path: Path, settings: Settings) -> None:
    """b.avi with its MPEG-4 FourCC replaced by one no decoder knows."""
    data = clip("b.avi").read_bytes()
    head = data[:8192]
    assert b"FMP4" in head
    patched = tmp_path / "unknown-codec.avi"
    patched.write_bytes(head.replace(b"FMP4", b"ZZZZ") + data[8192:])
    with pytest.raises(UnsupportedCodecError, match="no decoder"):
        probe(patched, settings.media)


def test_limits(clip, settings: Settings) -> None:
    path = clip("vtest.avi")
    m = settings.media
    with pytest.raises(MediaLimitError, match="bytes is over"):
        probe(path, m.model_copy(update={"max_file_bytes": 1000}))
    with pytest.raises(MediaLimitError, match="duration"):
        probe(path, m.model_copy(update={"max_duration_s": 10.0}))
    with pytest.raises(MediaLimitError, match="resolution"):
        probe(path, m.model_copy(update={"max_width": 320}))


def test_decode_time_is_bounded(clip, settings: Settings) -> None:
    with pytest.raises(MediaLimitError, match="longer than"):
        keyframes(clip("vtest.avi"), settings.media.model_copy(update={"max_decode_s": 0.05}))
