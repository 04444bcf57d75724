"""The Milvus backend of the frame-level copy index (`core.frames.FrameStore`): one row per
catalogue keyframe, searched by inner product of L2-normalised fingerprints.

Two collections: the frames themselves (auto-id rows: video id, version, time, shot bounds,
fingerprint) and a small version register beside them, one row per video keyed by its id. Milvus
has no conditional write, so the version rule is applied here, against the register: a write or a
removal reads the video's registered version (a primary-key lookup, cheap at any size), refuses
when it is newer, and registers its own version BEFORE touching the frames. That order makes a
crash harmless: the event is replayed (at-least-once), its version is not newer than itself, and
the replay redoes the frame delete and insert. Registering first is also what makes the two edge
cases simple and correct: an empty frame set still records its version (no marker rows inside
the frames collection, which searches would then have to filter out), and a removal leaves its
version behind as a tombstone, so a stale write replayed later cannot bring the frames back.
Equal versions are not "newer": a replay of the same version rewrites the same frames.

Index: IVF_FLAT (nlist 1024 per segment, nprobe 32), chosen by measurement; see `INDEX_TYPE` for
the figures. Search batches every query row into one request,
because milvus-lite's per-request overhead (a Python pass over every stored row to resolve
duplicates and deletes) dwarfs the per-row ANN cost; `exclude` is a filter expression, evaluated
inside the search so k hits still come back.

Connections follow `store.py`: the client is made lazily, dropped after a transport failure so
the next call reconnects, and a service that keeps failing raises `StoreUnavailableError`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from vidsearch.core.errors import StoreRejectedError
from vidsearch.core.frames import FrameHit, FrameSet
from vidsearch.core.retry import with_retries
from vidsearch.core.settings import Settings
from vidsearch.plugins.milvus.client import close_quietly, is_not_loaded, make_client
from vidsearch.plugins.milvus.filters import quote, quote_list
from vidsearch.plugins.milvus.store import is_transient

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ID_BYTES = 256
# FLAT vs IVF_FLAT, same run of `ops/bench/copies.py` (milvus-lite 3.2, 240k rows of dim 256, 20
# queries of 3-12 rows, k 16, 2 shared cores): p50 490 ms FLAT vs 150 ms IVF_FLAT per batched
# search, and both found the source frame of every copied query row (recall against exact top-16:
# 1.0 vs 0.86; the misses are among near-ties of the unrelated rows, which cast no vote). Index
# build at flush: 8.9 s vs 10.8 s for all 240k rows. A segment smaller than nlist is trained with
# one list per row (faiss cannot train more lists than points); at 1,600 and 8,000 rows the source
# frame was still always found. nlist 1024 suits milvus-lite's segments of at most 100k rows
# (~100 rows per list); a Milvus server with larger segments may want more.
INDEX_TYPE = "IVF_FLAT"
NLIST = 1024
NPROBE = 32
ID_CHUNK = 500  # ids per `video_id in [...]` expression
READ_ATTEMPTS = 2  # a read retries once (on a fresh channel after a restart), then reports unavailable
HIT_FIELDS = ["video_id", "t"]
FRAME_FIELDS = ["video_id", "version", "t", "shot_start", "shot_end"]


def versions_name(collection: str) -> str:
    return f"{collection}__versions"


def _frames_schema(client: MilvusClient, dim: int) -> Any:
    schema = client.create_schema(auto_id=True, enable_dynamic_field=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("video_id", DataType.VARCHAR, max_length=MAX_ID_BYTES)
    schema.add_field("version", DataType.INT64)
    schema.add_field("t", DataType.FLOAT)
    schema.add_field("shot_start", DataType.FLOAT)
    schema.add_field("shot_end", DataType.FLOAT)  # -1 when the shot is unknown
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    return schema


def _frames_index(client: MilvusClient, index_type: str) -> Any:
    params = client.prepare_index_params()
    build = {"nlist": NLIST} if index_type.startswith("IVF") else {}
    params.add_index(field_name="vec", index_type=index_type, metric_type="IP", params=build)
    # deletes, `frames()` and `exclude` all select by video id: an inverted index answers them
    # without scanning every row
    params.add_index(field_name="video_id", index_type="INVERTED")
    return params


def _versions_schema(client: MilvusClient) -> Any:
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("video_id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES)
    schema.add_field("version", DataType.INT64)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs one vector field
    return schema


def _create(client: MilvusClient, name: str, schema: Any, index_params: Any) -> None:
    """Create a collection; another process creating it at the same moment is not an error."""
    if client.has_collection(name):
        return
    try:
        client.create_collection(name, schema=schema, index_params=index_params, consistency_level="Strong")
    except MilvusException:
        if not client.has_collection(name):
            raise


def frame_rows(frames: FrameSet) -> list[dict[str, Any]]:
    """A frame set -> its rows (no pk: the collection assigns them)."""
    vectors = np.asarray(frames.vectors, dtype=np.float32)
    shots = frames.shots or [(-1.0, -1.0)] * len(frames.times)
    return [{"video_id": frames.video_id, "version": int(frames.version), "t": float(t),
             "shot_start": float(s0), "shot_end": float(s1), "vec": vec}
            for t, (s0, s1), vec in zip(frames.times, shots, vectors, strict=True)]


def frame_sets(rows: Sequence[dict[str, Any]]) -> dict[str, FrameSet]:
    """Stored rows -> one time-ordered FrameSet per video. Shots are returned only when every
    frame of the video has one (a partial list would not line up with the frames)."""
    by_video: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_video.setdefault(row["video_id"], []).append(row)
    out: dict[str, FrameSet] = {}
    for video_id, group in by_video.items():
        group.sort(key=lambda r: r["t"])
        shots = [(float(r["shot_start"]), float(r["shot_end"])) for r in group]
        known = all(end >= 0 for _, end in shots)
        out[video_id] = FrameSet(
            video_id=video_id, version=max(int(r["version"]) for r in group),
            times=np.asarray([r["t"] for r in group], dtype=np.float32),
            vectors=np.asarray([r["vec"] for r in group], dtype=np.float32),
            shots=shots if known else [])
    return out


class MilvusFrameStore:
    name = "milvus-frames"

    def __init__(self, settings: Settings, collection: str, dim: int = 256, timeout_s: float = 30.0,
                 *, index_type: str = INDEX_TYPE, nprobe: int = NPROBE) -> None:
        """`index_type` and `nprobe` are for benchmarks that compare indexes; the defaults are
        the measured choice."""
        self.settings = settings
        self.collection = collection
        self.versions = versions_name(collection)
        self.dim = dim
        self.timeout_s = timeout_s
        self.index_type = index_type
        self.search_params: dict[str, Any] = {"metric_type": "IP",
                                              "params": {"nprobe": nprobe} if index_type.startswith("IVF") else {}}
        self._client: Any = None
        self._lock = threading.Lock()
        self._ready = False

    # -- connection ----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = make_client(self.settings.milvus, timeout=self.timeout_s, dedicated=True)
            return self._client

    def _reset(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        close_quietly(client, "milvus frames")

    def _run(self, fn: Callable[[Any], T], attempts: int) -> T:
        """One operation, retried on transient failures (a released collection is loaded first);
        still failing after `attempts` -> StoreUnavailableError. A refusal that is not transient
        (a bad expression, a bad row) propagates as the server's own error."""
        def attempt() -> T:
            try:
                return fn(self.client)
            except Exception as exc:
                if is_not_loaded(exc):
                    self._load()
                    raise ConnectionError(f"collection was released: {exc}") from exc
                if is_transient(exc):
                    self._reset()
                raise

        return with_retries(self.name, attempts, self.settings.indexer.retry_max_wait_s, is_transient, attempt)

    def _write(self, fn: Callable[[Any], T]) -> T:
        return self._run(fn, self.settings.indexer.retry_attempts)

    def _read(self, fn: Callable[[Any], T]) -> T:
        return self._run(fn, READ_ATTEMPTS)

    def _load(self) -> None:
        client = self.client
        for name in (self.collection, self.versions):
            client.load_collection(name)

    def close(self) -> None:
        self._reset()

    # -- lifecycle -----------------------------------------------------------------------------
    def ensure(self) -> None:
        def run(c: Any) -> None:
            _create(c, self.collection, _frames_schema(c, self.dim), _frames_index(c, self.index_type))
            params = c.prepare_index_params()
            params.add_index(field_name="v", index_type="FLAT", metric_type="L2")
            _create(c, self.versions, _versions_schema(c), params)
            for name in (self.collection, self.versions):
                c.load_collection(name)

        self._write(run)
        self._ready = True

    def _exists(self) -> bool:
        """Reads of a catalogue whose frame index was never created answer empty, not fail."""
        if not self._ready:
            self._ready = bool(self._read(lambda c: c.has_collection(self.collection)))
        return self._ready

    def drop(self) -> None:
        def run(c: Any) -> None:
            for name in (self.collection, self.versions):
                if c.has_collection(name):
                    c.drop_collection(name)

        self._write(run)
        self._ready = False

    # -- writes --------------------------------------------------------------------------------
    def _stored_version(self, c: Any, video_id: str) -> int:
        rows = c.get(self.versions, ids=[video_id], output_fields=["version"])
        return int(rows[0]["version"]) if rows else -1

    def _register(self, c: Any, video_id: str, version: int) -> None:
        c.upsert(self.versions, [{"video_id": video_id, "version": version, "v": [1.0, 0.0]}])

    def _check(self, frames: FrameSet) -> None:
        """A frame set that can never become rows is this event's fault (dead-letter it)."""
        if len(frames.video_id.encode("utf-8")) > MAX_ID_BYTES or not frames.video_id:
            raise StoreRejectedError(self.name, frames.video_id[:100], f"video id must be 1..{MAX_ID_BYTES} bytes")
        if len(frames.times) and frames.vectors.shape[1] != self.dim:
            raise StoreRejectedError(self.name, frames.video_id,
                                     f"fingerprints of dim {frames.vectors.shape[1]}, the index holds {self.dim}")

    def write(self, frames: FrameSet) -> bool:
        self._check(frames)
        if not self._ready:
            self.ensure()
        rows = frame_rows(frames)
        own = f"video_id == {quote(frames.video_id)} and version <= {int(frames.version)}"

        def run(c: Any) -> bool:
            stored = self._stored_version(c, frames.video_id)
            if stored > frames.version:
                return False
            self._register(c, frames.video_id, int(frames.version))
            if stored >= 0:  # unregistered -> no rows (the register is written first); skips a full scan
                c.delete(self.collection, filter=own)
            if rows:
                c.insert(self.collection, rows)
            return True

        return self._write(run)

    def remove(self, video_id: str, version: int) -> bool:
        if not self._ready:
            self.ensure()
        own = f"video_id == {quote(video_id)} and version <= {int(version)}"

        def run(c: Any) -> bool:
            stored = self._stored_version(c, video_id)
            if stored > version:
                return False
            self._register(c, video_id, int(version))  # the tombstone: older writes stay refused
            if stored >= 0:
                c.delete(self.collection, filter=own)
            return True

        return self._write(run)

    def apply(self, writes: Sequence[FrameSet], removals: Sequence[tuple[str, int]]) -> int:
        """A batch of writes and removals (one per video) in four requests instead of four per
        video: one version lookup, one register, one delete, one insert. Same version rule as
        `write`/`remove`; returns how many were stale."""
        for frames in writes:
            self._check(frames)
        if not self._ready:
            self.ensure()
        wanted = {f.video_id: int(f.version) for f in writes} | {vid: int(v) for vid, v in removals}
        if not wanted:
            return 0

        def run(c: Any) -> int:
            stored = {r["video_id"]: int(r["version"]) for r in c.get(self.versions, ids=list(wanted), output_fields=["version"])}
            fresh = {vid for vid, v in wanted.items() if stored.get(vid, -1) <= v}
            if fresh:
                c.upsert(self.versions, [{"video_id": vid, "version": wanted[vid], "v": [1.0, 0.0]} for vid in fresh])
            old = [vid for vid in fresh if vid in stored]
            if old:  # registered -> may have rows, all of an older-or-equal version
                c.delete(self.collection, filter=f"video_id in {quote_list(old)}")
            rows = [row for f in writes if f.video_id in fresh for row in frame_rows(f)]
            if rows:
                c.insert(self.collection, rows)
            return len(wanted) - len(fresh)

        return self._write(run)

    def bulk_load(self, sets: Sequence[FrameSet]) -> int:
        """Register and insert many videos in two requests, WITHOUT the version check: only for
        videos known to be absent (a first backfill, a benchmark), where per-video writes would
        spend four round trips per video. Returns the rows inserted."""
        for frames in sets:
            self._check(frames)
        if not self._ready:
            self.ensure()
        register = [{"video_id": f.video_id, "version": int(f.version), "v": [1.0, 0.0]} for f in sets]
        rows = [row for f in sets for row in frame_rows(f)]

        def run(c: Any) -> None:
            if register:
                c.upsert(self.versions, register)
            if rows:
                c.insert(self.collection, rows)

        self._write(run)
        return len(rows)

    # -- reads ---------------------------------------------------------------------------------
    def search(self, vectors: np.ndarray, k: int, exclude: Sequence[str] = ()) -> list[list[FrameHit]]:
        queries = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if not len(queries) or k <= 0 or not self._exists():
            return [[] for _ in range(len(queries))]
        flt = f"video_id not in {quote_list(dict.fromkeys(exclude))}" if exclude else ""
        data = list(queries)
        res = self._read(lambda c: c.search(self.collection, data=data, anns_field="vec", limit=k, filter=flt,
                                            search_params=self.search_params, output_fields=HIT_FIELDS))
        return [[FrameHit(video_id=h["entity"]["video_id"], t=float(h["entity"]["t"]), score=float(h["distance"]))
                 for h in hits] for hits in res]

    def frames(self, video_ids: Sequence[str]) -> dict[str, FrameSet]:
        ids = list(dict.fromkeys(video_ids))
        if not ids or not self._exists():
            return {}
        rows: list[dict[str, Any]] = []
        for start in range(0, len(ids), ID_CHUNK):
            rows.extend(self._read(partial(self._query_frames, ids[start:start + ID_CHUNK])))
        return frame_sets(rows)

    def _query_frames(self, ids: list[str], c: Any) -> list[dict[str, Any]]:
        return list(c.query(self.collection, filter=f"video_id in {quote_list(ids)}",
                            output_fields=[*FRAME_FIELDS, "vec"]))

    def count(self) -> int:
        if not self._exists():
            return 0
        res = self._read(lambda c: c.query(self.collection, filter="", output_fields=["count(*)"]))
        return int(res[0]["count(*)"])
