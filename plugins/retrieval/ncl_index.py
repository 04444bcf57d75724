"""Recompute NCL biases for a whole index: the function the beat schedule runs.

bank (query log, or the model's training queries) x every video's fused vector -> Sinkhorn ->
beta_j -> each store's `vec_ncl` = [fused; tau*beta_j]. Rewrites keep each document's own
external version (OpenSearch `external_gte`; Milvus re-checks the stored version just before the
upsert), so a recompute can never make a newer event look stale, nor resurrect an older state.
A new video gets its beta from one half-step with the last run's u (`NclState.bias`, applied by
the indexing pipeline) until the next recompute balances everything again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.encoders.balanced.ncl import half_step_beta, sinkhorn_biases
from vidsearch.plugins.milvus.client import iter_rows

log = logging.getLogger(__name__)


@dataclass
class NclReport:
    videos: int
    bank: int
    tau: float
    updated: dict[str, int]
    beta_min: float
    beta_max: float
    state: NclState | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "state"}


@dataclass
class NclState:
    """What a new video needs for its bias before the next recompute: the bank, the query
    scalings u from the last Sinkhorn run, tau, and how many videos that run balanced."""

    bank: np.ndarray
    log_u: np.ndarray
    tau: float
    n_videos: int

    def bias(self, fused: np.ndarray) -> float:
        """tau * beta from one half-step with the current u (0 for an empty vector)."""
        if not np.any(fused):
            return 0.0
        scores = (self.bank @ fused.astype(np.float32))[:, None]
        beta = half_step_beta(self.log_u, scores, self.tau, self.n_videos)
        return float(self.tau * beta[0])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part.npz")
        np.savez(tmp, bank=self.bank, log_u=self.log_u, tau=self.tau, n_videos=self.n_videos)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> NclState:
        with np.load(path) as z:
            return cls(z["bank"], z["log_u"], float(z["tau"]), int(z["n_videos"]))


def opensearch_vectors(client: Any, index: str) -> dict[str, tuple[np.ndarray, dict]]:
    from opensearchpy import helpers

    out = {}
    for hit in helpers.scan(client, index=index, query={"query": {"exists": {"field": "vec_fused"}}}, size=500):
        out[hit["_id"]] = (np.asarray(hit["_source"]["vec_fused"], np.float32), hit["_source"])
    return out


def write_opensearch(client: Any, index: str, rows: dict[str, tuple[np.ndarray, dict]], bias: dict[str, float]) -> int:
    from opensearchpy import helpers

    actions = []
    for vid, (vec, src) in rows.items():
        doc = {**src, "vec_ncl": np.append(vec, bias[vid]).astype(np.float32).tolist()}
        actions.append({"_op_type": "index", "_index": index, "_id": vid, "version": int(src["version"]),
                        "version_type": "external_gte", "_source": doc})
    ok, errors = helpers.bulk(client, actions, raise_on_error=False, refresh="wait_for")
    for err in errors:  # a newer event landed meanwhile: its own write is authoritative
        log.info("ncl: skipped %s", err)
    return int(ok)


def milvus_vectors(client: Any, collection: str) -> dict[str, dict]:
    return {row["id"]: row for row in iter_rows(client, collection, ["*"])}


def write_milvus(client: Any, collection: str, rows: dict[str, dict], bias: dict[str, float], batch: int = 500) -> int:
    ids = list(rows)
    n = 0
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        now = {r["id"]: r["version"] for r in client.query(collection, filter=f"id in {json.dumps(chunk)}", output_fields=["id", "version"])}
        upserts = []
        for vid in chunk:
            row = rows[vid]
            if now.get(vid) != row["version"]:
                continue  # changed or deleted since we read it
            row = {k: v for k, v in row.items() if k != "sparse"}  # BM25 output is recomputed by Milvus
            row["vec_ncl"] = np.append(np.asarray(row["vec_fused"], np.float32), bias[vid]).tolist()
            upserts.append(row)
        if upserts:
            client.upsert(collection, upserts)
            n += len(upserts)
    return n


def compute_bias(vectors: dict[str, np.ndarray], bank: np.ndarray, tau: float) -> tuple[dict[str, float], NclState]:
    ids = list(vectors)
    mat = np.stack([vectors[i] for i in ids]).astype(np.float32)
    bank = bank.astype(np.float32)
    res = sinkhorn_biases(bank @ mat.T, tau, iters=500, tol=1e-5)
    beta = res.beta
    state = NclState(bank, res.log_u.astype(np.float32), tau, len(ids))
    return {vid: float(tau * b) for vid, b in zip(ids, beta, strict=True)}, state


def recompute(bank: np.ndarray, tau: float, opensearch: tuple[Any, str] | None = None,
              milvus: tuple[Any, str] | None = None) -> NclReport:
    """(client, index-or-alias) per store; the vectors are read from the first store given."""
    if len(bank) == 0:
        raise ValueError("the NCL query bank is empty (no logged queries and no model bank)")
    os_rows = opensearch_vectors(*opensearch) if opensearch else None
    mv_rows = milvus_vectors(*milvus) if milvus else None
    vectors = ({k: v for k, (v, _) in os_rows.items()} if os_rows is not None
               else {k: np.asarray(r["vec_fused"], np.float32) for k, r in (mv_rows or {}).items()})
    vectors = {k: v for k, v in vectors.items() if np.any(v)}
    if not vectors:
        return NclReport(0, len(bank), tau, {}, 0.0, 0.0)
    bias, state = compute_bias(vectors, bank, tau)
    updated = {}
    if opensearch and os_rows is not None:
        updated["opensearch"] = write_opensearch(*opensearch, {k: v for k, v in os_rows.items() if k in bias}, bias)
    if milvus and mv_rows is not None:
        mv_bias = {k: bias.get(k, 0.0) for k in mv_rows}
        updated["milvus"] = write_milvus(*milvus, mv_rows, mv_bias)
    values = np.fromiter(bias.values(), np.float64)
    return NclReport(len(vectors), len(bank), tau, updated, float(values.min() / tau), float(values.max() / tau), state)
