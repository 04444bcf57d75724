"""`vidsearch bench query`: route latencies and k-NN recall against catalogue size (10k, 100k, 300k
documents), index size and search-node memory, and how latency grows with size.

Documents carry real Tux Paint caption text (BM25 has real words to match) and synthetic
vectors: a caption's MiniLM embedding plus noise, so nearest neighbours are meaningful. They are
bulk-loaded into an OpenSearch index with vidsearch's own mapping (lucene HNSW). Every route is
timed on the same queries in the same run: bm25, knn, `fused` (the retriever running both
concurrently and fusing with dynamic margin) and `opensearch_hybrid` (the same retriever fusing
with the emulation of neural-search's min-max + arithmetic-mean pipeline, which the local stack
cannot install); query encoding is excluded from all four and reported separately. recall_at_10
is the k-NN route's top 10 against exact search over the same vectors.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.ops.bench.stats import percentiles

NOISE = 0.035  # per-dimension std of the noise around a caption's embedding


class _Lookup:
    """Query encoder over vectors computed up front (the benchmark times retrieval, not MiniLM)."""

    version = "bench"

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        v = self.vectors[text]
        return v, v

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def _corpus(n: int, captions: list[str], cap_vecs: np.ndarray, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    pick = rng.integers(0, len(captions), n)
    vecs = cap_vecs[pick] + rng.standard_normal((n, cap_vecs.shape[1])).astype(np.float32) * NOISE
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    extra = rng.integers(0, len(captions), n)
    texts = [f"{captions[a]} {captions[b].split(' ')[-1]}" for a, b in zip(pick, extra, strict=True)]
    return texts, vecs.astype(np.float32)


def _load(client: Any, index: str, texts: list[str], vecs: np.ndarray, progress: Callable[[str], None]) -> float:
    from opensearchpy import helpers

    from vidsearch.plugins.opensearch.videos import mapping

    body = mapping()
    body["settings"]["index"]["refresh_interval"] = "-1"
    client.indices.create(index=index, body=body)
    t0 = time.perf_counter()

    def actions():  # noqa: ANN202
        for i, (t, v) in enumerate(zip(texts, vecs, strict=True)):
            yield {"_index": index, "_id": f"d{i}", "_source": {"video_id": f"d{i}", "version": 1, "title": t,
                                                                   "description": "", "vec_fused": v.tolist()}}

    done = 0
    for ok, _ in helpers.streaming_bulk(client, actions(), chunk_size=1000, request_timeout=300, raise_on_error=True):
        done += ok
        if done % 20000 == 0:
            progress(f"indexed {done}/{len(texts)}")
    client.indices.put_settings(index=index, body={"index": {"refresh_interval": "1s"}})
    client.indices.refresh(index=index, request_timeout=600)
    client.indices.forcemerge(index=index, max_num_segments=1, request_timeout=1800)
    return time.perf_counter() - t0


def run(settings: Settings, sizes: tuple[int, ...] = (10_000, 100_000, 300_000), queries: int = 200,
        progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    from vidsearch.encoders.serving import load_text_encoder
    from vidsearch.ops.datasets.stamps import stamps
    from vidsearch.ops.stack.manager import Stack
    from vidsearch.plugins.backends import open_store
    from vidsearch.plugins.opensearch.client import make_client
    from vidsearch.plugins.retrieval.request import SearchRequest
    from vidsearch.plugins.retrieval.retriever import Retriever

    rng = np.random.default_rng(0)
    text = load_text_encoder(settings)
    captions = sorted({s.caption for s in stamps()})
    cap_vecs = text.encode(captions).astype(np.float32)
    qtexts = [captions[i] for i in rng.choice(len(captions), queries, replace=False)]
    t0 = time.perf_counter()
    qvecs = text.encode(qtexts, kind="query").astype(np.float32)
    encode_ms = (time.perf_counter() - t0) * 1000 / queries
    client = make_client(settings.opensearch.model_copy(update={"timeout_s": 120.0}), max_retries=0, maxsize=16)
    out: dict[str, Any] = {"queries": queries, "query_encode_ms_mean": round(encode_ms, 3), "runs": []}
    for n in sizes:
        index = f"vidsearch-bench-{n}-{uuid.uuid4().hex[:6]}"
        texts, vecs = _corpus(n, captions, cap_vecs, rng)
        progress(f"loading {n} documents into {index}")
        load_s = _load(client, index, texts, vecs, progress)
        try:
            # the bench index is read by its own name (OpenSearch takes an index name where an alias goes)
            scoped = settings.model_copy(update={"indexer": settings.indexer.model_copy(update={"index_prefix": index})})
            store = open_store("opensearch", scoped, client=client)
            retriever = Retriever(_Lookup(dict(zip(qtexts, qvecs, strict=True))), {"lexical": store, "dense": store},
                                  min_candidates=50)
            from vidsearch.core.filters import Filters

            none = Filters()
            timings: dict[str, list[float]] = {"bm25": [], "knn": [], "fused": [], "opensearch_hybrid": []}
            recalls = []
            for q, v in zip(qtexts[:20], qvecs[:20], strict=True):  # warm-up: caches, JIT, HNSW graph pages
                store.bm25(q, none, 50), store.knn("vec_fused", v, none, 50)
            exact_top = np.argsort(-(qvecs @ vecs.T), axis=1)[:, :10]
            for i, (q, v) in enumerate(zip(qtexts, qvecs, strict=True)):
                t = time.perf_counter()
                store.bm25(q, none, 50)
                timings["bm25"].append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                got = store.knn("vec_fused", v, none, 50)
                timings["knn"].append((time.perf_counter() - t) * 1000)
                top10 = sorted(got, key=lambda d: -got[d])[:10]
                recalls.append(len({int(d[1:]) for d in top10} & set(exact_top[i].tolist())) / 10)
                t = time.perf_counter()
                retriever.search(SearchRequest(q=q, k=10, moments=False))
                timings["fused"].append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                retriever.search(SearchRequest(q=q, k=10, moments=False, fusion="opensearch_hybrid"))
                timings["opensearch_hybrid"].append((time.perf_counter() - t) * 1000)
            routes: dict[str, dict[str, Any]] = {k: percentiles(v) for k, v in timings.items()}
            slowest = max(routes["bm25"]["p99_ms"], routes["knn"]["p99_ms"])
            stats = client.indices.stats(index=index, metric="store,docs")["_all"]["primaries"]
            out["runs"].append({
                "docs": n, "load_s": round(load_s, 1), "routes": routes,
                "index_mb": round(stats["store"]["size_in_bytes"] / 2**20, 1),
                "opensearch_rss_mb": round(Stack(settings).process("opensearch").rss_bytes() / 2**20, 1),
                "recall_at_10": round(float(np.mean(recalls)), 4),
                "fused_p99_over_slowest_route_p99": round(routes["fused"]["p99_ms"] / slowest, 3),
                "targets": {"fused_p99_le_1_2x_slowest": routes["fused"]["p99_ms"] <= 1.2 * slowest,
                            "recall_at_10_ge_0_95": float(np.mean(recalls)) >= 0.95},
            })
            progress(f"{n}: {out['runs'][-1]}")
        finally:
            client.indices.delete(index=index, ignore_unavailable=True)
    out["growth"] = growth(out["runs"])
    return out


def growth(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """How latency grows with the catalogue: per route, the exponent b of p50 ~ a * docs^b fitted
    over the sizes run (log-log least squares; 0 = flat, 1 = linear), and which route the fused
    query waits on (the slower of bm25 and knn at the largest size: they run concurrently)."""
    if len(runs) < 2:
        return {}
    docs = np.log([r["docs"] for r in runs])
    exponents = {}
    for route in runs[0]["routes"]:
        p50 = np.log([max(r["routes"][route]["p50_ms"], 1e-3) for r in runs])
        exponents[route] = round(float(np.polyfit(docs, p50, 1)[0]), 3)
    last = runs[-1]["routes"]
    return {"p50_exponent": exponents, "fused_waits_on": max(("bm25", "knn"), key=lambda r: last[r]["p50_ms"]),
            "index_mb_per_100k_docs": round(runs[-1]["index_mb"] * 100_000 / runs[-1]["docs"], 1)}
