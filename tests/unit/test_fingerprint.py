"""The fingerprint whitening: fitted on pairs it must bring edited copies closer than other frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidsearch.encoders.fingerprint import (
    Fingerprinter,
    FingerprintInputError,
    FingerprintModelError,
    fit_learned_whitening,
    frame_set,
    load_fingerprinter,
    project,
)


def _data(rng: np.random.Generator, n: int = 400, d: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames whose identity lives in some directions, and edits that move others a lot more
    (the way a crop or a colour change moves pooled features more than content differs)."""
    identity = rng.normal(size=(n, d)) * np.r_[np.ones(d // 2), np.full(d - d // 2, 0.1)]
    edit = rng.normal(size=(n, d)) * np.r_[np.full(d // 2, 0.05), np.full(d - d // 2, 2.0)]
    return identity, identity + edit, rng.normal(size=(n, d)) * np.r_[np.ones(d // 2), np.full(d - d // 2, 0.1)]


def _separation(a: np.ndarray, b: np.ndarray, others: np.ndarray) -> float:
    """Mean similarity of pairs minus mean best similarity to a different frame."""
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    a, b, others = unit(a), unit(b), unit(others)
    return float(np.mean(np.sum(a * b, 1)) - np.mean(np.max(b @ others.T, 1)))


def test_learned_whitening_separates_copies_from_other_frames() -> None:
    rng = np.random.default_rng(0)
    anchors, positives, _ = _data(rng)
    mean, proj = fit_learned_whitening(anchors, positives, dim=16, shrink=0.1)
    a, b, others = _data(np.random.default_rng(1))  # held-out frames
    raw = _separation(a, b, others)
    white = _separation(project(a, mean, proj), project(b, mean, proj), project(others, mean, proj))
    assert white > raw + 0.05, (raw, white)
    out = project(a, mean, proj)
    assert out.shape == (len(a), 16) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)


def test_fit_refuses_mismatched_pairs() -> None:
    with pytest.raises(ValueError):
        fit_learned_whitening(np.zeros((3, 4)), np.zeros((2, 4)))


def test_save_read_round_trip_and_version(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    fp = Fingerprinter(rng.normal(size=8).astype(np.float32), rng.normal(size=(8, 4)).astype(np.float32), {"k": 1})
    fp.save(tmp_path / "w.npz")
    back = Fingerprinter.read(tmp_path / "w.npz")
    x = rng.normal(size=(5, 8)).astype(np.float32)
    assert np.array_equal(back(x), fp(x)) and back.version == fp.version and back.card["k"] == 1
    other = Fingerprinter(fp.mean, fp.projection * 2, {})
    assert other.version != fp.version
    with pytest.raises(FingerprintInputError):
        fp(np.zeros((2, 9), np.float32))


def test_unreadable_or_foreign_files_are_deployment_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(FingerprintModelError):
        Fingerprinter.read(tmp_path / "bad.npz")
    np.savez(tmp_path / "foreign.npz", mean=np.zeros(3), projection=np.zeros((3, 2)), card=np.array('{"format": "x"}'))
    with pytest.raises(FingerprintModelError):
        Fingerprinter.read(tmp_path / "foreign.npz")


def test_packaged_whitening_loads_for_the_backbone() -> None:
    fp = load_fingerprinter()
    assert fp.projection.shape == (1280, fp.dim) and fp.card["pairs"] > 500
    assert fp(np.random.default_rng(0).normal(size=(3, 1280)).astype(np.float32)).shape == (3, fp.dim)


def test_frame_set_sorts_by_time_and_keeps_each_keyframes_shot() -> None:
    rng = np.random.default_rng(3)
    fp = Fingerprinter(np.zeros(6, np.float32), rng.normal(size=(6, 3)).astype(np.float32), {})
    feats = rng.normal(size=(3, 6)).astype(np.float32)
    fs = frame_set("v", 2, np.array([5.0, 1.0, 3.0]), feats, [(0.0, 2.0), (2.0, 4.5), (4.5, 6.0)], fp)
    assert list(fs.times) == [1.0, 3.0, 5.0] and fs.shots == [(0.0, 2.0), (2.0, 4.5), (4.5, 6.0)]
    assert np.allclose(fs.vectors[0], fp(feats[1:2])[0])
    assert frame_set("v", 1, np.array([1.0]), feats[:1], [], fp).shots == []
