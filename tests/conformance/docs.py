"""Deterministic `IndexDoc`s for the conformance tests: every VECTOR_FIELDS vector a float32 unit
vector of DIM dimensions from a seeded RNG, so rankings are reproducible on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from vidsearch.core.documents import DIM, VECTOR_FIELDS, IndexDoc

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def unit(rng: np.random.Generator, near: np.ndarray | None = None, noise: float = 1.0) -> np.ndarray:
    """A random unit vector; with `near`, `near` plus `noise`-scaled jitter (similar vectors)."""
    v = rng.standard_normal(DIM).astype(np.float32)
    if near is not None:
        v = near + noise * v / np.linalg.norm(v)
    return (v / np.linalg.norm(v)).astype(np.float32)


def vectors(rng: np.random.Generator, fused: np.ndarray | None = None) -> dict[str, np.ndarray]:
    out = {name: unit(rng) for name in VECTOR_FIELDS}
    if fused is not None:
        out["fused"] = fused.astype(np.float32)
    return out


def make_doc(rng: np.random.Generator, video_id: str, version: int = 1, *, title: str | None = None,
             model_version: str = "m1", language: str | None = "en", duration: float | None = 60.0,
             published_at: datetime | None = EPOCH, tags: list[str] | None = None,
             fused: np.ndarray | None = None, **extra: Any) -> IndexDoc:
    return IndexDoc(
        video_id=video_id,
        version=version,
        title=title if title is not None else f"clip {video_id}",
        description=f"description of {video_id}",
        tags=list(tags) if tags is not None else ["misc"],
        language=language,
        duration=duration,
        published_at=published_at,
        transcript=f"spoken words in {video_id}",
        ocr=f"onscreen {video_id}",
        vectors=vectors(rng, fused),
        model_version=model_version,
        media_uri=f"/media/{video_id}.mp4",
        **extra,
    )


def day(n: int) -> datetime:
    return EPOCH + timedelta(days=n)


# -- the shared read-only catalogue (conftest.catalogue) --------------------------------------------

def filter_docs() -> list[IndexDoc]:
    """12 docs: f<i> is "fr" for odd i else "en", lasts 10*i + 5 s, was published 30*i days after
    2020-01-01, is tagged "cats" when i % 3 == 0 else "dogs"; every title says "walrus"."""
    r = np.random.default_rng(7)
    return [make_doc(r, f"f{i:02d}", title=f"walrus {'walrus ' * (i % 4)}number {i}",
                     language="fr" if i % 2 else "en", duration=10.0 * i + 5, published_at=day(30 * i),
                     tags=["cats"] if i % 3 == 0 else ["dogs"]) for i in range(12)]


SEARCH_TITLES = ("a quiet morning", "crowded city street", "the pelican dives", "mountain trail run",
                 "kitchen cooking show", "ocean waves at night")


def search_docs() -> list[IndexDoc]:
    """s<i> with distinct titles; metadata outside every filter case of the filter tests
    (German, 500 s, published in 2022, tagged "birds"), so they never match those filters."""
    r = np.random.default_rng(8)
    return [make_doc(r, f"s{i}", title=t, language="de", duration=500.0 + i, published_at=day(1000),
                     tags=[f"t{i}", "birds"]) for i, t in enumerate(SEARCH_TITLES)]


def silent_doc() -> IndexDoc:
    """A video without speech: its `speech` vector is all zeros (how a missing modality is stored)."""
    doc = make_doc(np.random.default_rng(9), "silent", title="silent film", language="de", duration=500.0,
                   published_at=day(1000), tags=["birds"])
    doc.vectors["speech"] = np.zeros(DIM, dtype=np.float32)
    return doc


def catalogue_docs() -> list[IndexDoc]:
    return [*filter_docs(), *search_docs(), silent_doc()]
