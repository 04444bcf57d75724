"""Serving the bridge head: numpy only (two matrix products), loaded from a non-pickle npz.

The file holds the weights and a JSON card (backbone version, text encoder version, corpus hash,
training settings). The head is only valid for the backbone and text encoder it was trained
between, so loading it against others is a broken deployment, refused at start-up.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vidsearch.encoders.errors import EncoderError
from vidsearch.encoders.text import normalize_rows

if TYPE_CHECKING:
    from vidsearch.encoders.features import VideoFeatures

HEAD_FORMAT = 1
DEFAULT_JOIN_WEIGHT = 0.5
PROBE_SEED, PROBE_ROWS = 0, 4


class BridgeHeadError(EncoderError):
    """A bridge head that does not fit this deployment (other backbone or text encoder, bad file)."""


@dataclass(frozen=True)
class BridgeHead:
    w1: np.ndarray  # (backbone_dim, hidden)
    b1: np.ndarray
    w2: np.ndarray  # (hidden, text_dim)
    b2: np.ndarray
    card: dict

    @property
    def version(self) -> str:
        digest = hashlib.sha256()
        for a in (self.w1, self.b1, self.w2, self.b2):
            digest.update(np.ascontiguousarray(a, np.float32).tobytes())
        return f"bridgehead@{digest.hexdigest()[:12]}"

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """(n, backbone_dim) pooled features -> (n, text_dim) unit vectors in the text space."""
        if len(features) == 0:
            return np.zeros((0, self.w2.shape[1]), np.float32)
        hidden = np.maximum(features.astype(np.float32) @ self.w1 + self.b1, 0.0)
        return normalize_rows(hidden @ self.w2 + self.b2).astype(np.float32)

    @property
    def join_weight(self) -> float:
        """The joined bridge's weight on this head: the one `vidsearch pretrain --join-data` chose
        on validation, else an even mix."""
        return float(self.card.get("join_weight", DEFAULT_JOIN_WEIGHT))

    def with_card(self, **entries: object) -> BridgeHead:
        """The same weights (so the same version) with more facts on the card."""
        return replace(self, card={**self.card, **entries})

    def half(self) -> BridgeHead:
        """Weights rounded to float16 (and held as float32): half the file, a shipped head of ~3.4 MB,
        and the same version before saving and after loading. Cosine to the float32 head > 0.9999."""
        r = [np.asarray(a, np.float16).astype(np.float32) for a in (self.w1, self.b1, self.w2, self.b2)]
        return replace(self, w1=r[0], b1=r[1], w2=r[2], b2=r[3])

    def save(self, path: Path) -> None:
        """The npz (float16 where the weights are exactly float16, as after `half`) and, beside it,
        `<name>.json`: the manifest a shipped head is checked against (version, file digest, card,
        and the head's outputs on a seeded probe, so a loader that computes otherwise is caught)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:  # np.savez on a handle: no ".npz" appended to other names
            np.savez(f, w1=_compact(self.w1), b1=_compact(self.b1), w2=_compact(self.w2), b2=_compact(self.b2),
                     card=np.array(json.dumps({"format": HEAD_FORMAT, **self.card}, sort_keys=True)))
        manifest = {"version": self.version, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                    "bytes": path.stat().st_size, "card": {"format": HEAD_FORMAT, **self.card},
                    "probe": {"seed": PROBE_SEED, "rows": PROBE_ROWS, "head": self(probe(self)).round(6).tolist()}}
        manifest_path(path).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> BridgeHead:
        try:
            with np.load(path, allow_pickle=False) as z:
                card = json.loads(str(z["card"]))
                w1, b1, w2, b2 = (z[k].astype(np.float32) for k in ("w1", "b1", "w2", "b2"))
                head = cls(w1, b1, w2, b2, card)
        except (OSError, KeyError, ValueError) as exc:
            raise BridgeHeadError(f"{path}: not a bridge head file: {exc}") from exc
        if card.get("format") != HEAD_FORMAT:
            raise BridgeHeadError(f"{path}: head format {card.get('format')}, this build reads {HEAD_FORMAT}")
        if head.w1.shape[1] != head.w2.shape[0] or head.b1.shape != (head.w1.shape[1],) or head.b2.shape != (head.w2.shape[1],):
            raise BridgeHeadError(f"{path}: inconsistent weight shapes")
        return head

    def check_fits(self, backbone_version: str, text_version: str) -> None:
        want = (self.card.get("backbone"), self.card.get("text"))
        if want != (backbone_version, text_version):
            raise BridgeHeadError(f"bridge head was trained for backbone {want[0]} and text encoder {want[1]}; "
                                  f"this deployment runs {backbone_version} and {text_version}")


def _compact(a: np.ndarray) -> np.ndarray:
    half = np.asarray(a, np.float16)
    return half if np.array_equal(half.astype(np.float32), a) else np.asarray(a, np.float32)


def manifest_path(head_path: Path) -> Path:
    return head_path.with_suffix(".json")


def probe(head: BridgeHead) -> np.ndarray:
    """Seeded non-negative inputs shaped like pooled features (after a ReLU-like backbone)."""
    return np.abs(np.random.default_rng(PROBE_SEED).standard_normal((PROBE_ROWS, head.w1.shape[0]))).astype(np.float32)


def manifest_problems(head_path: Path) -> list[str]:
    """What does not match between a head file and its manifest (empty when they agree)."""
    try:
        manifest = json.loads(manifest_path(head_path).read_text())
    except (OSError, ValueError) as exc:
        return [f"no readable manifest: {exc}"]
    problems = []
    if hashlib.sha256(head_path.read_bytes()).hexdigest() != manifest.get("sha256"):
        problems.append("file digest differs from the manifest")
    head = BridgeHead.load(head_path)
    if head.version != manifest.get("version"):
        problems.append(f"version {head.version} != manifest {manifest.get('version')}")
    if head.card != manifest.get("card"):
        problems.append("card differs from the manifest")
    want = np.asarray(manifest.get("probe", {}).get("head", []), np.float32)
    got = head(probe(head))
    if want.shape != got.shape or not np.allclose(got, want, atol=1e-4):
        problems.append("the loader's outputs on the probe differ from the manifest's")
    return problems


class PretrainedBridge:
    """The bridge interface of `vision.TextBridge`, from pooled features instead of class names."""

    def __init__(self, head: BridgeHead, text_version: str) -> None:
        self.head = head
        self.version = f"{head.version}/{text_version}"

    def from_vision(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        return self.head(features)

    def from_record(self, feats: VideoFeatures) -> np.ndarray:
        """Head-only re-embedding: the bridge from a record's stored pooled features."""
        return self.head(feats.frame_features)
