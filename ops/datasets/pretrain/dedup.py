"""Near-identical images across sources: a 64-bit difference hash to find candidates, confirmed
by comparing 16x16 colour thumbnails.

The hash alone is too coarse for icons: on a sample of 3000 emoji, 9% of them had a hash within
distance 3 of a different emoji (round yellow faces, flags, keycaps). Requiring the thumbnails to
agree too (mean absolute difference at most 10 of 255) keeps those apart.

Hand-rolled rather than `imagehash`, which would pull SciPy and PyWavelets in for one function.
Candidates are found by banding: two hashes within Hamming distance 3 agree exactly on at least
one of their four 16-bit bands (pigeonhole), so only bucket-mates are compared.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from PIL import Image

MAX_DISTANCE = 3
MAX_THUMB_DIFF = 10.0


@dataclass(frozen=True)
class Signature:
    hash: int
    thumb: bytes  # 16x16 RGB on white, uint8

    def near(self, other: Signature) -> bool:
        if (self.hash ^ other.hash).bit_count() > MAX_DISTANCE:
            return False
        a = np.frombuffer(self.thumb, np.uint8).astype(np.int16)
        b = np.frombuffer(other.thumb, np.uint8).astype(np.int16)
        return float(np.abs(a - b).mean()) <= MAX_THUMB_DIFF


def signature(img: Image.Image) -> Signature:
    """The icon drawn on white: 8x8 signs of horizontal brightness steps, and a colour thumbnail."""
    rgba = img.convert("RGBA")
    flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    flat.alpha_composite(rgba)
    rgb = flat.convert("RGB")
    g = np.asarray(rgb.convert("L").resize((9, 8), Image.Resampling.LANCZOS), np.int16)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    h = int("".join("1" if b else "0" for b in bits), 2)
    return Signature(h, np.asarray(rgb.resize((16, 16), Image.Resampling.LANCZOS), np.uint8).tobytes())


def _bands(h: int) -> list[tuple[int, int]]:
    return [(b, (h >> (16 * b)) & 0xFFFF) for b in range(4)]


class SignatureIndex:
    """Signatures bucketed by band, for 'is anything here near-identical to this one?'."""

    def __init__(self) -> None:
        self.items: list[Signature] = []
        self.buckets: dict[tuple[int, int], list[int]] = defaultdict(list)

    def add(self, sig: Signature) -> int:
        self.items.append(sig)
        for band in _bands(sig.hash):
            self.buckets[band].append(len(self.items) - 1)
        return len(self.items) - 1

    def find(self, sig: Signature) -> int | None:
        for band in _bands(sig.hash):
            for j in self.buckets.get(band, ()):
                if sig.near(self.items[j]):
                    return j
        return None


def near_duplicates(sigs: list[Signature]) -> list[int | None]:
    """For each signature, the index of an earlier near-identical one (its keeper), or None."""
    index = SignatureIndex()
    position: list[int] = []  # index slot -> position in `sigs`
    keeper: list[int | None] = []
    for i, sig in enumerate(sigs):
        j = index.find(sig)
        keeper.append(None if j is None else position[j])
        if j is None:
            index.add(sig)
            position.append(i)
    return keeper
