"""`vidsearch bench copies`: the frame index (`MilvusFrameStore` on an embedded milvus-lite file)
at growing catalogue sizes: insert rate, raw batched ANN latency and recall, full same-source
search latency and accuracy, against exact numpy search over the same vectors in the same run.

Synthetic fingerprints with the structure copy search meets: videos come in families of
`FAMILY` that share a base direction (look-alike videos, the confusers), each video has its own
direction, and its keyframes vary around both (frames of one video resemble each other).
A query is a noisy copy (cosine ~0.86 to its source frames) of a contiguous run of one
reference's keyframes, shifted in time, half of them with unrelated frames spliced around it.

Memory stays at one batch of vectors: batches are generated from per-batch seeds, inserted, and
regenerated for the exact baseline (whose timing covers only its matrix products and top-k,
never the generation), so a million rows need no gigabyte of numpy.

`index_type` reruns it on another index (the FLAT vs IVF_FLAT figures beside
`plugins/milvus/frames.INDEX_TYPE` come from such runs). The timings include milvus-lite's own
per-request pass over every stored row (Python in 3.x), which dominates at a million rows: a
Milvus server pays none of it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.core.frames import FrameSet
from vidsearch.core.settings import Settings
from vidsearch.ops.bench.stats import percentiles

FAMILY = 10  # videos sharing a base direction
BATCH_ROWS = 10_000
K = 16  # neighbours per query keyframe (CopyParams.k)
NOISE = 0.6  # norm of the noise added to a copied frame: cosine 1/sqrt(1 + 0.6^2) ~ 0.86
FRAME_STEP_S = 2.0
WARMUP = 3
WRITE_SAMPLE = 10  # per-video write() calls timed, new and replacing (the live ingest path)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Catalogue:
    """Deterministic synthetic catalogue: batch `b` is regenerated identically on every call."""

    videos: int
    frames_per_video: int
    dim: int
    seed: int

    @property
    def videos_per_batch(self) -> int:
        return FAMILY * max(1, BATCH_ROWS // (self.frames_per_video * FAMILY))

    def batches(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first video, vectors of shape (videos, frames, dim)) per batch."""
        for first in range(0, self.videos, self.videos_per_batch):
            n = min(self.videos_per_batch, self.videos - first)
            rng = np.random.default_rng([self.seed, self.videos, first])
            family = _unit(rng.standard_normal((-(-n // FAMILY), self.dim), dtype=np.float32))
            own = _unit(rng.standard_normal((n, self.dim), dtype=np.float32))
            frame = _unit(rng.standard_normal((n, self.frames_per_video, self.dim), dtype=np.float32))
            base = 0.6 * np.repeat(family, FAMILY, axis=0)[:n] + 0.6 * own
            yield first, _unit(base[:, None, :] + 0.5 * frame)

    def frame_sets(self, first: int, vectors: np.ndarray) -> list[FrameSet]:
        times = np.arange(self.frames_per_video, dtype=np.float32) * FRAME_STEP_S
        shots = [(float(t) - 1.0, float(t) + 1.0) for t in times]
        return [FrameSet(f"v{first + i}", 1, times, vectors[i], shots) for i in range(len(vectors))]


@dataclass(frozen=True)
class Query:
    source: int  # the reference video it copies
    frames: FrameSet
    copied: dict[int, tuple[str, float]]  # query row -> the (video id, time) it is a copy of


def _queries(cat: Catalogue, n: int, rng: np.random.Generator) -> list[Query]:
    """Queries with their ground truth; sources are read back from the regenerated batches."""
    sources = sorted(rng.choice(cat.videos, size=min(n, cat.videos), replace=False).tolist())
    wanted = set(sources)
    frames: dict[int, np.ndarray] = {}
    for first, vectors in cat.batches():
        for v in wanted & set(range(first, first + len(vectors))):
            frames[v] = vectors[v - first]
    out = []
    for i, v in enumerate(sources):
        length = int(rng.integers(3, cat.frames_per_video + 1))
        start = int(rng.integers(0, cat.frames_per_video - length + 1))
        copied = frames[v][start:start + length]
        noise = rng.standard_normal(copied.shape).astype(np.float32)
        copied = _unit(copied + NOISE * _unit(noise))
        pad = 2 if i % 2 else 0  # odd queries: spliced into unrelated footage
        if pad:
            copied = np.concatenate([_unit(rng.standard_normal((pad, cat.dim), dtype=np.float32)), copied,
                                     _unit(rng.standard_normal((pad, cat.dim), dtype=np.float32))])
        times = np.arange(len(copied), dtype=np.float32) * FRAME_STEP_S + 7.0
        truth = {pad + j: (f"v{v}", (start + j) * FRAME_STEP_S) for j in range(length)}
        frames_ = FrameSet(f"q{i}", 1, times, copied, [(float(t) - 1.0, float(t) + 1.0) for t in times])
        out.append(Query(v, frames_, truth))
    return out


def _exact(cat: Catalogue, queries: list[FrameSet], k: int) -> tuple[list[float], list[set[tuple[str, float]]]]:
    """Brute-force inner product over every stored vector: per query, its ms (products and top-k
    only) and the exact top-k (video id, time) of each query row."""
    ms = [0.0] * len(queries)
    best = [(np.full((len(q.times), 0), -np.inf, np.float32), np.zeros((len(q.times), 0), np.int64)) for q in queries]
    for first, vectors in cat.batches():
        flat = vectors.reshape(-1, cat.dim)
        offset = first * cat.frames_per_video
        for i, q in enumerate(queries):
            t0 = time.perf_counter()
            scores = q.vectors @ flat.T
            kk = min(k, scores.shape[1])
            top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            s = np.concatenate([best[i][0], np.take_along_axis(scores, top, axis=1)], axis=1)
            ids = np.concatenate([best[i][1], top + offset], axis=1)
            keep = np.argsort(-s, axis=1)[:, :k]
            best[i] = (np.take_along_axis(s, keep, axis=1), np.take_along_axis(ids, keep, axis=1))
            ms[i] += (time.perf_counter() - t0) * 1000
    truth = []
    for _, ids in best:
        truth.append({(f"v{r // cat.frames_per_video}", (r % cat.frames_per_video) * FRAME_STEP_S)
                      for r in ids.ravel().tolist()})
    return ms, truth


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return (time.perf_counter() - t0) * 1000, out


def _disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _copy_searcher() -> Any:
    """The full same-source search when its module is installed (built alongside this bench)."""
    try:
        from vidsearch.plugins.copies.search import CopySearcher
    except ImportError:
        return None
    return CopySearcher


def _reload_indexed(store: Any, timeout_s: float = 300.0) -> None:
    """Release and load the collection once its segments' indexes are built. milvus-lite builds
    them in the background after a flush, and a load that starts while an index file is still
    being written fails with "File is too small"; so wait for no pending rows, and retry the
    load a few times for what describe_index cannot see."""
    from pymilvus.exceptions import MilvusException

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = store.client.describe_index(store.collection, "vec") or {}
        if not info.get("pending_index_rows"):
            break
        time.sleep(0.2)
    for attempt in range(5):
        try:
            store.client.release_collection(store.collection)
            store.client.load_collection(store.collection)
            return
        except MilvusException:
            if attempt == 4:
                raise
            time.sleep(1.0 + attempt)


def _run_one(settings: Settings, cat: Catalogue, queries: int, index_type: str | None,
             progress: Callable[[str], None]) -> dict[str, Any]:
    from vidsearch.plugins.milvus import lite
    from vidsearch.plugins.milvus.frames import INDEX_TYPE, MilvusFrameStore

    with tempfile.TemporaryDirectory(prefix="vidsearch-bench-copies-") as tmp:
        uri = str(Path(tmp) / "frames.db")
        scoped = settings.model_copy(update={"milvus": settings.milvus.model_copy(update={"uri": uri})})
        store = MilvusFrameStore(scoped, "bench_frames", dim=cat.dim, timeout_s=600.0,
                                 index_type=index_type or INDEX_TYPE)
        try:
            store.ensure()
            rows, insert_s = 0, 0.0
            for first, vectors in cat.batches():
                sets = cat.frame_sets(first, vectors)
                t0 = time.perf_counter()
                rows += store.bulk_load(sets)
                insert_s += time.perf_counter() - t0
                if rows % 100_000 < BATCH_ROWS or first + len(vectors) == cat.videos:
                    progress(f"{cat.videos} videos: inserted {rows} rows")
            # Persist, then reload: every segment gets its index now (milvus-lite otherwise
            # builds them in the background, and the timings would depend on when it finishes).
            t0 = time.perf_counter()
            store.client.flush(store.collection)
            _reload_indexed(store)
            index_s = time.perf_counter() - t0
            progress(f"{cat.videos} videos: flushed and indexed in {index_s:.1f}s")

            rng = np.random.default_rng([cat.seed, cat.videos, 1])
            qs = _queries(cat, queries, rng)
            base_ms, truth = _exact(cat, [q.frames for q in qs], K)
            for q in qs[:WARMUP]:
                store.search(q.frames.vectors, K)
            raw_ms: list[float] = []
            recalls: list[float] = []
            found: list[bool] = []
            for q, exact in zip(qs, truth, strict=True):
                ms, hits = _timed(store.search, q.frames.vectors, K)
                raw_ms.append(ms)
                got = {(h.video_id, round(h.t, 3)) for row in hits for h in row}
                recalls.append(len(got & exact) / max(1, len(exact)))
                found.extend(src in {(h.video_id, round(h.t, 3)) for h in hits[row]} for row, src in q.copied.items())
            full = _full(store, qs)
            first, vectors = next(cat.batches())
            new_ms, replace_ms = [], []
            for fs in cat.frame_sets(first, vectors[:WRITE_SAMPLE]):
                new = FrameSet(f"w{fs.video_id}", 1, fs.times, fs.vectors, fs.shots)  # nothing stored yet
                new_ms.append(_timed(store.write, new)[0])
                newer = FrameSet(fs.video_id, 2, fs.times, fs.vectors, fs.shots)  # deletes version 1 first
                replace_ms.append(_timed(store.write, newer)[0])
            return {
                "videos": cat.videos, "rows": rows, "index_type": store.index_type,
                "search_params": store.search_params["params"],
                "insert_s": round(insert_s, 2), "insert_rows_per_s": round(rows / insert_s, 1),
                "index_s": round(index_s, 2), "disk_bytes": _disk_bytes(Path(uri)),
                "write_new_video": percentiles(new_ms), "write_replacing_video": percentiles(replace_ms),
                "raw": {**percentiles(raw_ms), f"recall_at_{K}": round(float(np.mean(recalls)), 4),
                        "source_frame_found": round(float(np.mean(found)), 4)},
                "baseline_numpy_exact": percentiles(base_ms),
                "full": full,
            }
        finally:
            store.drop()
            store.close()
            lite.stop(uri)


def _full(store: Any, qs: list[Query]) -> dict[str, Any] | None:
    """Same-source search end to end: latency, and how often its best match is the source."""
    searcher_cls = _copy_searcher()
    if searcher_cls is None:
        return None
    searcher = searcher_cls(store)
    for q in qs[:WARMUP]:
        searcher.search(q.frames)
    ms, top1 = [], []
    for q in qs:
        t, matches = _timed(searcher.search, q.frames)
        ms.append(t)
        top1.append(bool(matches) and matches[0].reference_id == f"v{q.source}")
    return {**percentiles(ms), "hit_at_1": round(float(np.mean(top1)), 4)}


def run_copies_bench(settings: Settings, sizes: tuple[int, ...] = (1000, 10_000, 100_000), frames_per_video: int = 8,
                     queries: int = 50, dim: int = 256, seed: int = 0,
                     progress: Callable[[str], None] = lambda _m: None,
                     index_type: str | None = None) -> dict[str, Any]:
    """One run per catalogue size (in videos), each in its own throwaway milvus-lite file.
    `index_type`: override the store's index (to compare FLAT and IVF_FLAT)."""
    out: dict[str, Any] = {"dim": dim, "frames_per_video": frames_per_video, "queries": queries, "k": K,
                           "full_available": _copy_searcher() is not None, "runs": []}
    for n in sizes:
        cat = Catalogue(videos=n, frames_per_video=frames_per_video, dim=dim, seed=seed)
        run = _run_one(settings, cat, queries, index_type, progress)
        run["raw_p50_over_baseline_p50"] = round(run["raw"]["p50_ms"] / max(run["baseline_numpy_exact"]["p50_ms"], 1e-6), 3)
        out["runs"].append(run)
        progress(f"{n} videos: {run}")
    return out
