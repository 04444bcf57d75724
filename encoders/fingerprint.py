"""Frame fingerprints for same-source (copy) search: a learned whitening of pooled backbone features.

A copy detector needs frames of the same footage to stay close through re-encoding, scaling,
crops, borders, colour changes and overlays, while different footage of similar content (two
stamps of animals on white) moves apart. The semantic features do the opposite job (they group by
content), so fingerprints re-project them with a *learned whitening* (Radenovic et al., "Fine-tuning
CNN image retrieval with no human annotation"): whiten by the covariance of the differences of
matching pairs (a frame and an edited copy of it), which shrinks exactly the directions edits
move, then PCA of the whitened data to `dim` directions, then L2. Matching pairs come from
packaged frames and the edits the benchmark never uses for choices (ops/modeling/fingerprint_fit.py).

The input is the record's stored `frame_features` (the backbone's average-pooled, L2-normalised
1280-d vector per keyframe), so fingerprints of a catalogue are recomputed from stored base
features when the projection changes, without touching media. A horizontally flipped copy is
handled at query time (the query's flipped frames are searched too), not here.

The projection ships in the package as a non-pickle `.npz` (mean, projection, and a card) and has
its own version id (the hash of its arrays), stored with every frame row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.core.errors import DataError, DeploymentError
from vidsearch.core.frames import FrameSet
from vidsearch.encoders.errors import EncoderError

DEFAULT_DIM = 256
RESOURCE = "fingerprint_whitening.npz"
FORMAT = "vidsearch.fingerprint/1"


class FingerprintModelError(EncoderError, DeploymentError):
    """The whitening file is missing, unreadable or of another format (a deployment error)."""


class FingerprintInputError(EncoderError, DataError):
    """A record's frame features do not fit the whitening (another backbone's width): bad data."""

    stage = "fingerprint"


def l2(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.maximum(norms, 1e-12)).astype(np.float32)


def _inv_sqrt(cov: np.ndarray, shrink: float) -> np.ndarray:
    """cov^(-1/2) with the covariance shrunk toward its mean eigenvalue: with fewer pairs than
    dimensions the smallest eigenvalues are noise, and inverting them would blow those up."""
    d = cov.shape[0]
    cov = (1 - shrink) * cov + shrink * (np.trace(cov) / d) * np.eye(d)
    vals, vecs = np.linalg.eigh(cov)
    vals = np.maximum(vals, 1e-9)
    return (vecs / np.sqrt(vals)) @ vecs.T


def fit_learned_whitening(anchors: np.ndarray, positives: np.ndarray, dim: int = DEFAULT_DIM,
                          shrink: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), projection (D, dim)) from matching pairs: rows i of `anchors` and `positives`
    show the same frame before and after an edit. Pure numpy."""
    if anchors.shape != positives.shape or anchors.ndim != 2:
        raise ValueError(f"pairs must be two (n, D) arrays of one shape, got {anchors.shape} and {positives.shape}")
    both = np.concatenate([anchors, positives]).astype(np.float64)
    mean = both.mean(axis=0)
    diffs = (anchors - positives).astype(np.float64)
    within = diffs.T @ diffs / max(len(diffs), 1)
    white = _inv_sqrt(within, shrink)
    projected = (both - mean) @ white
    between = projected.T @ projected / max(len(projected), 1)
    vals, vecs = np.linalg.eigh(between)
    order = np.argsort(vals)[::-1][:dim]
    return mean.astype(np.float32), (white @ vecs[:, order]).astype(np.float32)


def project(features: np.ndarray, mean: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """(n, D) features -> (n, dim) L2-normalised fingerprints."""
    if features.size == 0:
        return np.zeros((0, projection.shape[1]), np.float32)
    return l2((features.astype(np.float32) - mean) @ projection)


@dataclass(frozen=True)
class Fingerprinter:
    mean: np.ndarray
    projection: np.ndarray
    card: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.projection.shape[1])

    @property
    def backbone(self) -> str:
        """The vision backbone whose features this whitening was fitted on (files from before the
        card said so were all fitted on Lite0)."""
        return str(self.card.get("backbone", "efficientnet-lite0"))

    @property
    def version(self) -> str:
        digest = hashlib.sha256(self.mean.tobytes() + self.projection.tobytes()).hexdigest()[:12]
        return f"fingerprint-lw{self.dim}@{digest}"

    def __call__(self, frame_features: np.ndarray) -> np.ndarray:
        if frame_features.size and frame_features.shape[1] != self.projection.shape[0]:
            raise FingerprintInputError(f"fingerprint expects {self.projection.shape[0]}-d backbone features, "
                                        f"got {frame_features.shape[1]}-d (another backbone needs its own whitening)")
        return project(frame_features, self.mean, self.projection)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        card = json.dumps({**self.card, "format": FORMAT})
        with open(path, "wb") as fh:
            np.savez(fh, mean=self.mean, projection=self.projection, card=np.array(card))

    @classmethod
    def read(cls, path: Path | Any) -> Fingerprinter:
        try:
            with np.load(path, allow_pickle=False) as z:
                card = json.loads(str(z["card"]))
                mean, projection = z["mean"].astype(np.float32), z["projection"].astype(np.float32)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise FingerprintModelError(f"cannot read fingerprint whitening {path}: {exc}") from exc
        if card.get("format") != FORMAT or mean.shape[0] != projection.shape[0]:
            raise FingerprintModelError(f"{path}: not a {FORMAT} file (card {card.get('format')!r}, "
                                        f"mean {mean.shape}, projection {projection.shape})")
        return cls(mean, projection, card)


def packaged_path() -> Any:
    return resources.files("vidsearch.encoders").joinpath(RESOURCE)


@lru_cache(maxsize=4)
def load_fingerprinter(path: str | None = None) -> Fingerprinter:
    """The configured whitening file, or the one shipped in the package."""
    if path:
        return Fingerprinter.read(Path(path))
    with resources.as_file(packaged_path()) as p:
        return Fingerprinter.read(p)


def configured_fingerprinter(settings: Any) -> Fingerprinter:
    """`copies.whitening` (or the packaged file), refused at start-up when it was fitted on
    another backbone's features than `encoders.vision_model`: both are 1280-d, so nothing later
    would notice, and every fingerprint would be meaningless."""
    path = settings.copies.whitening
    fp = load_fingerprinter(str(path) if path else None)
    if fp.backbone != settings.encoders.vision_model:
        raise FingerprintModelError(
            f"the fingerprint whitening {path or 'in the package'} was fitted on {fp.backbone} features, but "
            f"encoders.vision_model is {settings.encoders.vision_model}: fit one with `vidsearch train-fingerprint "
            f"--out F.npz` and set copies.whitening = F.npz, or set copies.enabled = false")
    return fp


def frame_set(video_id: str, version: int, times: np.ndarray, frame_features: np.ndarray,
              shots: list[tuple[float, float]], fingerprinter: Fingerprinter) -> FrameSet:
    """The frame-index entry of one video: its keyframes' times, fingerprints and shots."""
    from vidsearch.encoders.features import shot_at

    order = np.argsort(times, kind="stable")
    times = np.asarray(times, np.float32)[order]
    vectors = fingerprinter(np.asarray(frame_features)[order]) if len(order) else np.zeros((0, fingerprinter.dim), np.float32)
    held = [shot_at(shots, float(t)) for t in times] if shots else []
    return FrameSet(video_id, int(version), times, vectors, [s for s in held if s is not None] if all(held) else [])
