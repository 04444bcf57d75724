"""The copy benchmark's edits and video I/O on small synthetic frames (no packaged media)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vidsearch.ops.datasets import copy_transforms as tf
from vidsearch.ops.datasets.video_io import _resampled, fit_size, read_frames, reencode, write_mp4

pytestmark = pytest.mark.unit


def clip(n: int = 6, w: int = 64, h: int = 48, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus a per-frame offset and a little noise: every pixel and frame differs."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 200, w)[None, None, :, None]
    y = np.linspace(0, 50, h)[None, :, None, None]
    t = np.arange(n)[:, None, None, None] * 3
    base = x + y + t + np.array([0, 20, 40])[None, None, None, :]
    return np.clip(base + rng.normal(0, 2, (n, h, w, 3)), 0, 255).astype(np.uint8)


EDITS = {
    "scale": lambda f: tf.scale(f, 0.6),
    "crop": lambda f: tf.crop(f, 0.2, (0.3, 0.7)),
    "hflip": tf.hflip,
    "letterbox": lambda f: tf.borders(f, 0.25, "letterbox"),
    "pillarbox": lambda f: tf.borders(f, 0.25, "pillarbox"),
    "brightness": lambda f: tf.brightness_contrast(f, 1.2, -15),
    "text": lambda f: tf.text_overlay(f, "LIVE 42", (0.5, 0.5), 0.2),
    "logo": lambda f: tf.logo_overlay(f, np.full((20, 30, 4), 200, np.uint8), 0.25, (1.0, 1.0), 0.9),
    "pip": lambda f: tf.picture_in_picture(f, np.zeros_like(f), 0.5, (0.0, 0.0)),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_every_spatial_edit_keeps_shape_and_dtype_changes_pixels_and_is_deterministic(name: str) -> None:
    frames = clip()
    out = EDITS[name](frames)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert not np.array_equal(out, frames)
    assert np.array_equal(out, EDITS[name](frames))
    assert np.array_equal(frames, clip()), "the input must not be modified in place"


def test_flip_is_a_mirror_and_its_own_inverse() -> None:
    frames = clip()
    out = tf.hflip(frames)
    w = frames.shape[2]
    for j in (0, 5, w - 1):
        assert np.array_equal(out[:, :, j], frames[:, :, w - 1 - j])
    assert np.array_equal(tf.hflip(out), frames)


def test_crop_keeps_the_window_named_by_the_anchor() -> None:
    frames = clip(n=1, w=80, h=60)
    top_left = tf.crop(frames, 0.5, (0.0, 0.0))
    bottom_right = tf.crop(frames, 0.5, (1.0, 1.0))
    # the kept window is resized back: its first pixel is the frame's corner it was anchored to
    assert np.abs(top_left[0, 0, 0].astype(int) - frames[0, 0, 0]).max() <= 6
    assert np.abs(bottom_right[0, -1, -1].astype(int) - frames[0, -1, -1]).max() <= 6
    assert top_left.mean() < bottom_right.mean()  # the gradient grows to the bottom-right


def test_borders_are_bars_of_the_given_share_on_the_right_sides() -> None:
    frames = np.full((2, 40, 80, 3), 180, np.uint8)
    letter = tf.borders(frames, 0.25, "letterbox")
    assert (letter[:, :5] == 0).all() and (letter[:, -5:] == 0).all()
    assert (letter[:, 5:35] == 180).all()
    pillar = tf.borders(frames, 0.25, "pillarbox")
    assert (pillar[:, :, :10] == 0).all() and (pillar[:, :, -10:] == 0).all()
    assert (pillar[:, :, 10:70] == 180).all()


def test_brightness_contrast_is_the_affine_map_clipped() -> None:
    frames = np.array([0, 100, 128, 250], np.uint8).reshape(1, 1, 4, 1).repeat(3, axis=3)
    assert np.array_equal(tf.brightness_contrast(frames, 1.0, 0.0), frames)
    out = tf.brightness_contrast(frames, 2.0, 10.0)[0, 0, :, 0]
    assert out.tolist() == [0, 82, 138, 255]


def test_overlays_only_touch_their_corner() -> None:
    frames = np.full((2, 60, 80, 3), 90, np.uint8)
    text = tf.text_overlay(frames, "HD", (0.0, 0.0), 0.2)
    changed = np.argwhere((text != frames).any(axis=(0, 3)))
    assert len(changed) and changed[:, 0].max() < 30 and changed[:, 1].max() < 40
    logo = tf.logo_overlay(frames, np.full((10, 10, 4), 255, np.uint8), 0.2, (1.0, 1.0), 1.0)
    changed = np.argwhere((logo != frames).any(axis=(0, 3)))
    assert len(changed) and changed[:, 0].min() > 30 and changed[:, 1].min() > 40
    assert np.array_equal(tf.logo_overlay(frames, np.full((10, 10, 4), 255, np.uint8), 0.2, (1.0, 1.0), 0.0), frames)


def test_picture_in_picture_shrinks_the_copy_onto_the_background() -> None:
    frames = np.full((3, 40, 60, 3), 200, np.uint8)
    background = clip(n=3, w=60, h=40, seed=1)
    out = tf.picture_in_picture(frames, background, 0.5, (1.0, 0.0))  # top-right, 30x20
    assert (out[:, 0:20, 30:60] == 200).all()
    assert np.array_equal(out[:, 20:], background[:, 20:]) and np.array_equal(out[:, :, :30], background[:, :, :30])
    with pytest.raises(ValueError):
        tf.picture_in_picture(frames, background[:2], 0.5, (0.0, 0.0))


def test_cover_fills_the_target_without_distortion() -> None:
    frames = np.zeros((1, 40, 80, 3), np.uint8)
    frames[:, :, 20:60] = 255  # a centred 40x40 white square on black
    out = tf.cover(frames, (40, 40))  # the centred 40x40 window: all white
    assert out.shape == (1, 40, 40, 3) and out.min() > 240


@pytest.mark.parametrize("speed", [Fraction(3, 4), Fraction(4, 5), Fraction(5, 4), Fraction(3, 2)])
def test_speed_maps_output_time_to_source_time(speed: Fraction) -> None:
    n = 60  # a multiple of every numerator: the span lasts exactly n / speed frames
    idx = tf.speed_indices(n, speed)
    assert len(idx) == n / speed
    assert idx[0] == 0 and idx[-1] < n and (np.diff(idx) >= 0).all()
    for j in (0, 7, len(idx) - 1):  # output time j/fps shows source time j*speed/fps (floored to a frame)
        assert idx[j] == int(j * speed)
    frames = clip(n=n, w=8, h=8)
    assert np.array_equal(tf.change_speed(frames, speed), frames[idx])


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError):
        tf.speed_indices(10, Fraction(0))


def test_splice_returns_each_piece_s_span() -> None:
    a, b, c = clip(n=4, w=8, h=8), clip(n=7, w=8, h=8, seed=2), clip(n=2, w=8, h=8, seed=3)
    out, spans = tf.splice([a, b, c])
    assert spans == [(0, 4), (4, 11), (11, 13)]
    for piece, (s, e) in zip([a, b, c], spans):
        assert np.array_equal(out[s:e], piece)


def test_reencode_keeps_count_and_size_and_loses_detail_at_low_bitrate() -> None:
    frames = clip(n=10, w=160, h=120)
    low, high = reencode(frames, 10, 10_000), reencode(frames, 10, 2_000_000)
    assert low.shape == frames.shape == high.shape
    err_low = np.abs(low.astype(int) - frames).mean()
    err_high = np.abs(high.astype(int) - frames).mean()
    assert err_high < err_low < 40
    assert np.array_equal(low, reencode(frames, 10, 10_000))


def test_fit_size_only_scales_down_and_keeps_sides_even() -> None:
    assert fit_size(1920, 1080, 320) == (320, 180)
    assert fit_size(720, 528, 320) == (320, 234)
    assert fit_size(176, 144, 320) == (176, 144)


def test_resampling_picks_the_frame_on_screen_at_each_output_time() -> None:
    source = [(0.04 + i / 30, i) for i in range(30)]  # 1 s at 30 fps, starting late (as some files do)
    assert list(_resampled(source, 10, 1 / 30)) == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]
    slow = [(i / 4, i) for i in range(4)]  # 1 s at 4 fps: frames are held
    assert list(_resampled(slow, 10, 1 / 4)) == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]


def test_write_then_read_on_the_frame_grid(tmp_path: Path) -> None:
    n = 24
    frames = np.zeros((n, 48, 64, 3), np.uint8)
    frames[:] = (np.arange(n) * 10)[:, None, None, None]  # frame i is grey level 10 i
    path = write_mp4(tmp_path / "grey.mp4", frames, 30)
    back, fps = read_frames(path, None, 640)
    assert fps == 30 and back.shape == frames.shape
    assert np.abs(back.astype(int) - frames).mean() < 4
    ten, fps = read_frames(path, 10, 32)
    assert fps == 10 and ten.shape == (8, 24, 32, 3)
    levels = ten.reshape(8, -1).mean(axis=1)
    assert np.allclose(levels, np.arange(8) * 30, atol=4)  # output k shows source frame 3k
