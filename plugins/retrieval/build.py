"""Assemble a retriever from settings: query encoder (text encoder + optional balanced query
tower), the stores behind their aliases, fallbacks, and the query log."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidsearch.core.errors import ConfigError
from vidsearch.core.settings import Settings
from vidsearch.core.store import SearchStore, VideoStore
from vidsearch.encoders.fusion.default import VERSION as DEFAULT_FUSION_VERSION
from vidsearch.plugins.backends import open_store, search_roles
from vidsearch.plugins.retrieval.adaptive import FUSION_FILE, AdaptiveFusion, FusionModelError
from vidsearch.plugins.retrieval.query_log import recorder
from vidsearch.plugins.retrieval.retriever import Retriever


class TextQueryEncoder:
    """Raw vector from the text encoder; the fused-space vector from the balanced query tower
    when a model is configured (the default fusion lives in the text space, so raw == tower)."""

    def __init__(self, text, model=None) -> None:  # noqa: ANN001 - TextEncoder, BalancedModel
        self.text, self.model = text, model
        self.version = model.version if model is not None else DEFAULT_FUSION_VERSION

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        raw = self.text.encode([text], kind="query")[0].astype(np.float32)
        tower = self.model.embed_query_vectors(raw[None])[0] if self.model is not None else raw
        return raw, tower

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return self.text.encode(texts)


def make_store(settings: Settings, name: str) -> VideoStore:
    """A store for serving queries: short timeouts (a slow store degrades its route, it does not
    hold the request), one pooled connection per concurrent route."""
    return open_store(name, settings, timeout_s=5.0)


def build_retriever(settings: Settings, text=None, model=None) -> Retriever:  # noqa: ANN001
    from vidsearch.encoders.serving import load_text_encoder

    cfg = settings.retrieval
    if model is None and cfg.model_dir is not None:
        from vidsearch.encoders.balanced.serve import BalancedModel

        model = BalancedModel.load(cfg.model_dir, settings.encoders.threads)
    encoder = TextQueryEncoder(text or load_text_encoder(settings), model)
    lexical, dense, fallback_names = search_roles(settings)
    made: dict[str, VideoStore] = {}

    def store(name: str) -> VideoStore:
        if name not in made:
            made[name] = make_store(settings, name)
        return made[name]

    stores: dict[str, SearchStore] = {"lexical": store(lexical), "dense": store(dense)}
    fallbacks: dict[str, SearchStore] = {role: store(name) for role, name in fallback_names.items()}
    # Served queries feed NCL's bank only on opt-in: anyone who can query could otherwise steer it.
    return Retriever(encoder, stores, fallbacks, cfg.overfetch, cfg.min_candidates, on_query=recorder(settings),
                     fusion_model=load_fusion_model(settings))


def load_fusion_model(settings: Settings, model_dir: Path | None = None) -> AdaptiveFusion:
    """The `dynamic_margin` gate: the configured file, else the one trained beside the balanced
    model (its dense scores are what it learned to weigh), else the packaged default. A file that
    is configured but unreadable fails at start-up (a broken deployment), not per query."""
    cfg = settings.retrieval
    if cfg.fusion_model is not None:
        path: Path | None = cfg.fusion_model
    else:
        beside = (model_dir or cfg.model_dir or Path("/nonexistent")) / FUSION_FILE
        path = beside if beside.is_file() else None
    try:
        return AdaptiveFusion.load(path)
    except FusionModelError as exc:
        raise ConfigError(str(exc)) from exc
