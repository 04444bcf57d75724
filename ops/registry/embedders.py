"""A registry entry -> the embedder that produces its stored vectors (loaded once per process)."""

from __future__ import annotations

from functools import lru_cache

from vidsearch.encoders.fusion.embedder import BalancedEmbedder, DefaultEmbedder, VideoEmbedder
from vidsearch.ops.registry.registry import ModelEntry


@lru_cache(maxsize=8)
def _balanced(path: str) -> BalancedEmbedder:
    from vidsearch.encoders.balanced.serve import BalancedModel

    return BalancedEmbedder(BalancedModel.load(path))


def embedder_for(entry: ModelEntry) -> VideoEmbedder:
    if entry.kind == "default" or entry.path is None:
        return DefaultEmbedder()
    return _balanced(entry.path)


def needs_reextraction(entry: ModelEntry, feature_versions: dict[str, str]) -> bool:
    """A new head over the same backbones re-embeds from stored features; a changed encoder
    (vision, text, ASR, OCR) means the stored features are stale and media must be decoded again."""
    return any(feature_versions.get(k) != v for k, v in entry.encoder_versions.items() if k in feature_versions)
