"""The work of a re-embedding job, as plain functions the Celery tasks call.

Enumeration: the source version's OpenSearch index (the catalogue's source of truth for
metadata), split into `chunks` sliced-scroll slices; slice membership is a hash of the id, so a
retried chunk covers exactly the same videos. Each video: stored base features (re-extracted from
media only when the target model needs different encoders), the target's embedder, the same
`build_doc` and sinks as live ingestion, written with the video's own version: rewriting a chunk
is idempotent (same id, same version), never a duplicate.

One bad video never fails its chunk: a video whose stored features are missing or corrupt (with
no media to extract them again), whose media is bad, whose embedding fails or which a store
refuses is logged with the reason, recorded on the job and skipped. An unavailable service or a
broken deployment still fails the chunk (it is retried; see `vidsearch.core.errors.classify`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from vidsearch.connector.app import feature_store, make_sinks
from vidsearch.core.documents import IndexDoc
from vidsearch.connector.documents import build_doc
from vidsearch.connector.events import VideoUpsert
from vidsearch.connector.sinks.base import Sink
from vidsearch.encoders.features import FeatureFormatError, VideoFeatures
from vidsearch.core.errors import DataError, Handling, classify
from vidsearch.ops.registry.embedders import embedder_for, needs_reextraction
from vidsearch.ops.registry.registry import ModelEntry, ModelRegistry
from vidsearch.core.settings import Settings
from vidsearch.plugins.opensearch.client import make_client
from vidsearch.plugins.opensearch.videos import index_name

log = logging.getLogger(__name__)
SOURCE_FIELDS = ["video_id", "version", "title", "description", "tags", "language", "duration", "published_at",
                 "media_uri", "extra", "model_version"]


def os_client(settings: Settings):
    return make_client(settings.opensearch.model_copy(update={"timeout_s": max(settings.opensearch.timeout_s, 60.0)}))


def scan_slice(settings: Settings, version: str, slice_id: int, slices: int, size: int) -> Iterator[list[dict[str, Any]]]:
    client = os_client(settings)
    body: dict[str, Any] = {"query": {"match_all": {}}, "sort": ["_doc"], "size": size, "_source": SOURCE_FIELDS}
    if slices > 1:
        body["slice"] = {"id": slice_id, "max": slices}
    resp = client.search(index=index_name(settings.indexer.index_prefix, version), body=body, scroll="5m")
    scroll_id = resp.get("_scroll_id")
    try:
        while hits := resp["hits"]["hits"]:
            yield [h["_source"] for h in hits]
            resp = client.scroll(scroll_id=scroll_id, scroll="5m")
            scroll_id = resp.get("_scroll_id")
    finally:
        if scroll_id:
            client.clear_scroll(scroll_id=scroll_id, ignore=(404,))


def id_versions(settings: Settings, version: str) -> dict[str, tuple[int, str]]:
    """id -> (version, model_version) of every document in a version's index."""
    from opensearchpy import helpers

    out = {}
    for hit in helpers.scan(os_client(settings), index=index_name(settings.indexer.index_prefix, version),
                            query={"query": {"match_all": {}}, "_source": ["version", "model_version"]}, size=1000):
        out[hit["_id"]] = (int(hit["_source"]["version"]), hit["_source"].get("model_version", ""))
    return out


@lru_cache(maxsize=1)
def _extractor(settings_json: str):
    from vidsearch.encoders.extract import FeatureExtractor
    from vidsearch.core.settings import Settings as S

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


def target_sinks(settings: Settings, version: str) -> list[Sink]:
    """Sinks that write only the target version (never the alias)."""
    return make_sinks(settings, versions=lambda: [version])


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


def _embed(target: ModelEntry, pairs: list[tuple[dict[str, Any], VideoFeatures]],
           failed: dict[str, str]) -> list[IndexDoc]:
    """Embed a page in one batch; when the batch fails, one video at a time to find the bad ones."""
    embedder = embedder_for(target)
    try:
        vectors = embedder.vectors([f for _, f in pairs])
    except Exception as exc:
        if len(pairs) == 1:
            _skip(exc, pairs[0][0]["video_id"], "embed", failed)
            return []
        if not _videos_fault(exc):
            raise
        log.warning("reembed batch embedding failed, embedding one by one error=%s", exc)
        return [doc for pair in pairs for doc in _embed(target, [pair], failed)]
    out: list[IndexDoc] = []
    for (src, feats), vec in zip(pairs, vectors, strict=True):
        try:
            out.append(build_doc(to_event(src), feats, target.id, vec))
        except Exception as exc:  # noqa: BLE001 - a malformed source document is that video's fault
            _skip(exc, src["video_id"], "build", failed)
    return out


def reembed_docs(settings: Settings, target: ModelEntry, docs: list[dict[str, Any]], sinks: list[Sink],
                 failed: dict[str, str] | None = None) -> tuple[int, int]:
    """(written, re-extracted) for a page of source documents; videos that cannot be re-embedded
    are skipped and added to `failed` (video id -> reason)."""
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
    out = _embed(target, pairs, failed) if pairs else []
    for i, sink in enumerate(sinks):
        if not out:
            break
        res = sink.write(out)  # type: ignore[arg-type]
        if res.rejected:
            for vid, reason in res.rejected.items():
                log.warning("reembed document refused store=%s video_id=%s reason=%s", sink.name, vid, reason)
                failed[vid] = f"{sink.name} refused the document: {reason}"[:300]
            for earlier in sinks[:i]:  # keep the stores in agreement: undo what the others took
                earlier.remove(list(res.rejected))
            out = [d for d in out if d.video_id not in res.rejected]
    return len(out), extracted


def run_chunk(settings: Settings, registry: ModelRegistry, source: str, target: str, slice_id: int, slices: int,
              batch: int, progress: Callable[[int], None],
              on_failed: Callable[[dict[str, str]], None] = lambda _f: None) -> dict[str, int]:
    """Re-embed one slice. `progress` gets the running count after every page, `on_failed` the
    videos a page skipped (video id -> reason)."""
    entry = registry.get(target)
    sinks = target_sinks(settings, target)
    for sink in sinks:
        sink.ensure()
    done = extracted = failed_total = 0
    for page in scan_slice(settings, source, slice_id, slices, batch):
        failed: dict[str, str] = {}
        n, x = reembed_docs(settings, entry, page, sinks, failed)
        done += n
        extracted += x
        failed_total += len(failed)
        on_failed(failed)
        progress(done)
    return {"chunk": slice_id, "done": done, "extracted": extracted, "failed": failed_total}


def catch_up(settings: Settings, registry: ModelRegistry, source: str, target: str,
             failed: dict[str, str] | None = None) -> dict[str, int]:
    """Bring the target level with the source after the chunks: videos ingested meanwhile (live
    writes reach the target too, but embedded with the old model), newer versions, deletions.
    Videos skipped by the chunks are tried again here; those that fail again go to `failed`."""
    failed = {} if failed is None else failed
    client = os_client(settings)
    client.indices.refresh(index=",".join(index_name(settings.indexer.index_prefix, v) for v in (source, target)))
    src, dst = id_versions(settings, source), id_versions(settings, target)
    todo = [vid for vid, (ver, _) in src.items() if vid not in dst or dst[vid][0] < ver or dst[vid][1] != target]
    gone = [vid for vid in dst if vid not in src]
    entry, sinks = registry.get(target), target_sinks(settings, target)
    fixed = 0
    for start in range(0, len(todo), 256):
        ids = todo[start:start + 256]
        docs = client.mget(index=index_name(settings.indexer.index_prefix, source), body={"ids": ids},
                           _source_includes=SOURCE_FIELDS)["docs"]
        fixed += reembed_docs(settings, entry, [d["_source"] for d in docs if d.get("found")], sinks, failed)[0]
    if gone:
        for sink in sinks:
            sink.remove(gone)
    client.indices.refresh(index=index_name(settings.indexer.index_prefix, target))
    return {"caught_up": fixed, "removed": len(gone), "failed": len(failed)}


def missing_in(settings: Settings, version: str, failed: dict[str, str]) -> dict[str, str]:
    """The recorded failures whose video is absent from `version`'s index (a live write or a later
    retry may have put it there since)."""
    client, ids, missing = os_client(settings), sorted(failed), {}
    index = index_name(settings.indexer.index_prefix, version)
    for start in range(0, len(ids), 500):
        docs = client.mget(index=index, body={"ids": ids[start:start + 500]}, _source=False)["docs"]
        missing.update({d["_id"]: failed[d["_id"]] for d in docs if not d.get("found")})
    return missing
