"""Assemble a retriever from settings: query encoder (text encoder + optional balanced query
tower), the stores behind their aliases, fallbacks, and the query log."""

from __future__ import annotations

import numpy as np

from vidsearch.encoders.fusion.default import VERSION as DEFAULT_FUSION_VERSION
from vidsearch.core.settings import Settings
from vidsearch.plugins.milvus.client import is_embedded
from vidsearch.plugins.retrieval.query_log import recorder
from vidsearch.plugins.retrieval.retriever import Retriever
from vidsearch.plugins.retrieval.stores import MilvusStore, OpenSearchStore, SearchStore


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


def store_roles(settings: Settings) -> tuple[str, str]:
    cfg = settings.retrieval
    embedded = is_embedded(settings.milvus.uri)
    lexical = cfg.lexical_store or ("milvus" if embedded else "opensearch")
    dense = cfg.dense_store or ("milvus" if embedded else "opensearch")
    return lexical, dense


def make_store(settings: Settings, kind: str) -> SearchStore:
    if kind == "opensearch":
        from vidsearch.plugins.opensearch.client import make_client

        os_settings = settings.opensearch.model_copy(update={"timeout_s": min(settings.opensearch.timeout_s, 5.0)})
        # one pooled connection per concurrent route (urllib3's default pool holds one)
        return OpenSearchStore(make_client(os_settings, max_retries=0, maxsize=16), settings.indexer.index_prefix)
    from vidsearch.plugins.milvus.client import make_client as milvus_client

    return MilvusStore(lambda: milvus_client(settings.milvus, timeout=5.0, dedicated=True), settings.indexer.collection_prefix)


def build_retriever(settings: Settings, text=None, model=None) -> Retriever:  # noqa: ANN001
    from vidsearch.encoders.serving import load_text_encoder

    cfg = settings.retrieval
    if model is None and cfg.model_dir is not None:
        from vidsearch.encoders.balanced.serve import BalancedModel

        model = BalancedModel.load(cfg.model_dir, settings.encoders.threads)
    encoder = TextQueryEncoder(text or load_text_encoder(settings), model)
    lexical, dense = store_roles(settings)
    made: dict[str, SearchStore] = {}

    def store(kind: str) -> SearchStore:
        if kind not in made:
            made[kind] = make_store(settings, kind)
        return made[kind]

    stores = {"lexical": store(lexical), "dense": store(dense)}
    fallbacks: dict[str, SearchStore] = {}
    if cfg.fallback and not is_embedded(settings.milvus.uri):
        for role, kind in (("lexical", lexical), ("dense", dense)):
            fallbacks[role] = store("milvus" if kind == "opensearch" else "opensearch")
    # Served queries feed NCL's bank only on opt-in: anyone who can query could otherwise steer it.
    return Retriever(encoder, stores, fallbacks, cfg.overfetch, cfg.min_candidates, on_query=recorder(settings),
                     prior=dict(cfg.route_prior))
