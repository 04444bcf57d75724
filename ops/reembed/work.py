"""The work of a re-embedding job, as plain functions the Celery tasks call.

Enumeration: the source version in the catalogue store (the first configured store that keeps
full documents, else the first store: `catalogue_store`), split into `chunks` slices; slice
membership is stable per id, so a retried chunk covers exactly the same videos. Each video: stored
base features (re-extracted from media only when the target model needs different encoders), the
target's embedder, and the same document writer as live ingestion, written with the video's own
version: rewriting a chunk is idempotent (same id, same version), never a duplicate. Everything
goes through the `VideoStore` contract, so a deployment with any one engine can re-embed.

One bad video never fails its chunk: a video whose stored features are missing or corrupt (with
no media to extract them again), whose media is bad, whose embedding fails or which a store
refuses is logged with the reason, recorded on the job and skipped. An unavailable service or a
broken deployment still fails the chunk (it is retried; see `vidsearch.core.errors.classify`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from vidsearch.connector.app import feature_store, make_writer
from vidsearch.connector.events import VideoUpsert
from vidsearch.connector.writer import DocumentWriter
from vidsearch.core.documents import IndexDoc
from vidsearch.core.errors import DataError, Handling, classify
from vidsearch.core.settings import Settings
from vidsearch.core.store import VideoStore
from vidsearch.encoders.features import FeatureFormatError, VideoFeatures
from vidsearch.ops.registry.embedders import embedder_for, needs_reextraction
from vidsearch.ops.registry.registry import ModelEntry, ModelRegistry
from vidsearch.plugins.backends import configured_stores

log = logging.getLogger(__name__)
STORE_TIMEOUT_S = 60.0  # scans and bulk rewrites of a whole catalogue: longer than a search's


def stores(settings: Settings) -> list[VideoStore]:
    """Every configured store, with a timeout fit for whole-catalogue work."""
    return configured_stores(settings, timeout_s=STORE_TIMEOUT_S)


def catalogue_store(all_stores: Sequence[VideoStore]) -> VideoStore:
    """Where the job reads the catalogue (ids, versions, metadata): the first store that keeps
    full documents, else the first store (a single-engine deployment reads its only store)."""
    return next((s for s in all_stores if s.keeps_full_documents), all_stores[0])


def scan_slice(settings: Settings, version: str, slice_id: int, slices: int, size: int) -> Iterator[list[dict[str, Any]]]:
    store = catalogue_store(stores(settings))
    try:
        yield from store.scan(version, slice_id=slice_id, slices=slices, batch=size)
    finally:
        store.close()


@lru_cache(maxsize=1)
def _extractor(settings_json: str):
    from vidsearch.core.settings import Settings as S
    from vidsearch.encoders.extract import FeatureExtractor

    return FeatureExtractor.load(S.model_validate_json(settings_json))


class MissingFeaturesError(DataError):
    """A video has no usable stored features and no media to extract them from."""

    stage = "reembed-features"


def base_features(settings: Settings, target: ModelEntry, src: dict[str, Any]) -> tuple[VideoFeatures, bool]:
    """(features, re-extracted?) for one source document. Unreadable stored features count as
    missing: they are extracted again when the video has media."""
    store = feature_store(settings)
    try:
        feats = store.get(src["video_id"])
        unreadable = ""
    except FeatureFormatError as exc:
        feats, unreadable = None, f"stored features are corrupt: {exc}"
        log.warning("reembed stored features unreadable video_id=%s reason=%s", src["video_id"], exc)
    if feats is not None and not needs_reextraction(target, feats.encoder_versions):
        return feats, False
    if not src.get("media_uri"):
        if feats is None:
            raise MissingFeaturesError(f"{src['video_id']}: {unreadable or 'no stored features'} and no media to extract them from")
        return feats, False  # encoders differ but the media is gone: keep what we have, logged
    from vidsearch.connector.media_policy import local_media

    with local_media(src["media_uri"], settings.indexer.media_policy) as path:
        fresh = _extractor(settings.model_dump_json()).extract(path, video_id=src["video_id"], title=src.get("title", ""),
                                                               description=src.get("description", ""), tags=src.get("tags") or [])
    store.put(src["video_id"], int(src["version"]), fresh)
    return fresh, True


def to_event(src: dict[str, Any]) -> VideoUpsert:
    return VideoUpsert(op="upsert", schema_version=1, video_id=src["video_id"], version=int(src["version"]),
                       title=src.get("title") or "", description=src.get("description") or "", tags=src.get("tags") or [],
                       language=src.get("language"), duration=src.get("duration"), published_at=src.get("published_at"),
                       media_uri=src.get("media_uri"), features="stored", **(src.get("extra") or {}))


def target_writer(settings: Settings, target: ModelEntry) -> DocumentWriter:
    """A writer into the target version only (never the alias), embedding with the target's model."""
    return make_writer(settings, versions=lambda: [target.id], models=lambda: [(target.id, embedder_for(target))], frame_index=False)


def _videos_fault(exc: BaseException) -> bool:
    """Bad data (and unknown errors, see `classify`), but not an unavailable service, a broken
    deployment, or a connection/timeout error (which the chunk task retries)."""
    return classify(exc) is Handling.DEAD_LETTER and not isinstance(exc, (ConnectionError, TimeoutError))


def _skip(exc: Exception, video_id: str, stage: str, failed: dict[str, str]) -> None:
    """Record a video that cannot be re-embedded, or re-raise what is not the video's fault."""
    if not _videos_fault(exc):
        raise exc  # a service or the deployment: the chunk is retried, nothing is blamed on the video
    reason = f"{stage}: {type(exc).__name__}: {exc}"[:300]
    log.warning("reembed skipping video video_id=%s stage=%s reason=%s", video_id, stage, reason)
    failed[video_id] = reason


def _build(writer: DocumentWriter, pairs: list[tuple[dict[str, Any], VideoFeatures]],
           failed: dict[str, str]) -> list[IndexDoc]:
    """Build a page's documents in one batch; when the batch fails, one video at a time to find
    the bad ones."""
    try:
        return writer.build([(to_event(src), feats) for src, feats in pairs])
    except Exception as exc:
        if len(pairs) == 1:
            _skip(exc, pairs[0][0]["video_id"], "embed", failed)
            return []
        if not _videos_fault(exc):
            raise
        log.warning("reembed batch embedding failed, embedding one by one error=%s", exc)
        return [doc for pair in pairs for doc in _build(writer, [pair], failed)]


def reembed_docs(settings: Settings, target: ModelEntry, docs: list[dict[str, Any]], writer: DocumentWriter,
                 failed: dict[str, str] | None = None) -> tuple[int, int]:
    """(written, re-extracted) for a page of source documents; videos that cannot be re-embedded
    are skipped and added to `failed` (video id -> reason), including those a store refused (the
    writer's policy: recorded, never undone in the stores that took them)."""
    failed = {} if failed is None else failed
    pairs, extracted = [], 0
    for src in docs:
        try:
            feats, fresh = base_features(settings, target, src)
        except Exception as exc:  # noqa: BLE001 - _skip re-raises what is not the video's fault
            _skip(exc, str(src.get("video_id")), "features", failed)
            continue
        extracted += fresh
        pairs.append((src, feats))
    out = _build(writer, pairs, failed) if pairs else []
    if not out:
        return 0, extracted
    outcome = writer.write(out)
    for vid, why in outcome.rejected.items():
        failed[vid] = f"{why.store} refused the document: {why.reason}"[:300]
    return len(outcome.written), extracted


def run_chunk(settings: Settings, registry: ModelRegistry, source: str, target: str, slice_id: int, slices: int,
              batch: int, progress: Callable[[int], None],
              on_failed: Callable[[dict[str, str]], None] = lambda _f: None) -> dict[str, int]:
    """Re-embed one slice. `progress` gets the running count after every page, `on_failed` the
    videos a page skipped (video id -> reason)."""
    entry = registry.get(target)
    writer = target_writer(settings, entry)
    writer.ensure()
    done = extracted = failed_total = 0
    try:
        for page in scan_slice(settings, source, slice_id, slices, batch):
            failed: dict[str, str] = {}
            n, x = reembed_docs(settings, entry, page, writer, failed)
            done += n
            extracted += x
            failed_total += len(failed)
            on_failed(failed)
            progress(done)
    finally:
        writer.close()
    return {"chunk": slice_id, "done": done, "extracted": extracted, "failed": failed_total}


def catch_up(settings: Settings, registry: ModelRegistry, source: str, target: str,
             failed: dict[str, str] | None = None) -> dict[str, int]:
    """Bring the target level with the source after the chunks, in every store: videos ingested
    meanwhile (live writes reach the target too, but embedded with the old model), newer
    versions, deletions. Videos skipped by the chunks are tried again here; those that fail again
    go to `failed`."""
    failed = {} if failed is None else failed
    entry = registry.get(target)
    writer = target_writer(settings, entry)
    catalogue = catalogue_store(writer.stores)
    try:
        for store in writer.stores:
            store.refresh(source)
            store.refresh(target)
        src = catalogue.id_versions(source)
        todo: set[str] = set()
        gone: set[str] = set()
        for store in writer.stores:
            dst = store.id_versions(target)
            todo |= {vid for vid, (ver, _) in src.items() if vid not in dst or dst[vid][0] < ver or dst[vid][1] != target}
            gone |= {vid for vid in dst if vid not in src}
        fixed = 0
        ordered = sorted(todo)
        for start in range(0, len(ordered), 256):
            found = catalogue.fetch(ordered[start:start + 256], version=source)
            fixed += reembed_docs(settings, entry, list(found.values()), writer, failed)[0]
        writer.remove(sorted(gone))
        for store in writer.stores:
            store.refresh(target)
    finally:
        writer.close()
    return {"caught_up": fixed, "removed": len(gone), "failed": len(failed)}


def missing_in(settings: Settings, version: str, failed: dict[str, str]) -> dict[str, str]:
    """The recorded failures whose video is absent from `version` in some store (a live write or a
    later retry may have put it there since)."""
    ids, missing = sorted(failed), {}
    all_stores = stores(settings)
    try:
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for store in all_stores:
                found = store.fetch(chunk, version=version)
                missing.update({vid: failed[vid] for vid in chunk if vid not in found})
    finally:
        for store in all_stores:
            store.close()
    return missing
