"""The work of a re-embedding job, as plain functions the Celery tasks call.

Enumeration: the source version's OpenSearch index (the catalogue's source of truth for
metadata), split into `chunks` sliced-scroll slices; slice membership is a hash of the id, so a
retried chunk covers exactly the same videos. Each video: stored base features (re-extracted from
media only when the target model needs different encoders), the target's embedder, the same
`build_doc` and sinks as live ingestion, written with the video's own version: rewriting a chunk
is idempotent (same id, same version), never a duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from vidsearch.connector.app import feature_store, make_sinks
from vidsearch.connector.documents import IndexDoc, build_doc
from vidsearch.connector.events import VideoUpsert
from vidsearch.connector.sinks.base import Sink
from vidsearch.encoders.features import VideoFeatures
from vidsearch.ops.registry.embedders import embedder_for, needs_reextraction
from vidsearch.ops.registry.registry import ModelEntry, ModelRegistry
from vidsearch.ops.settings import Settings
from vidsearch.plugins.opensearch.client import make_client
from vidsearch.plugins.opensearch.videos import index_name

log = logging.getLogger(__name__)
SOURCE_FIELDS = ["video_id", "version", "title", "description", "tags", "language", "duration", "published_at",
                 "media_uri", "extra", "model_version"]


def os_client(settings: Settings):  # noqa: ANN201
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
def _extractor(settings_json: str):  # noqa: ANN202 - one FeatureExtractor per worker process
    from vidsearch.encoders.extract import FeatureExtractor
    from vidsearch.ops.settings import Settings as S

    return FeatureExtractor.load(S.model_validate_json(settings_json))


def base_features(settings: Settings, target: ModelEntry, src: dict[str, Any]) -> tuple[VideoFeatures, bool]:
    """(features, re-extracted?) for one source document."""
    store = feature_store(settings)
    feats = store.get(src["video_id"])
    if feats is not None and not needs_reextraction(target, feats.encoder_versions):
        return feats, False
    if not src.get("media_uri"):
        if feats is None:
            raise LookupError(f"{src['video_id']}: no stored features and no media to extract them from")
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


def reembed_docs(settings: Settings, target: ModelEntry, docs: list[dict[str, Any]], sinks: list[Sink]) -> tuple[int, int]:
    """(written, re-extracted) for a page of source documents."""
    pairs, extracted = [], 0
    for src in docs:
        try:
            feats, fresh = base_features(settings, target, src)
        except LookupError as exc:
            log.error("reembed: skipping %s", exc)
            continue
        extracted += fresh
        pairs.append((src, feats))
    vectors = embedder_for(target).vectors([f for _, f in pairs])
    out: list[IndexDoc] = [build_doc(to_event(src), feats, target.id, vec) for (src, feats), vec in zip(pairs, vectors, strict=True)]
    for sink in sinks:
        res = sink.write(out)  # type: ignore[arg-type]
        if res.rejected:
            raise RuntimeError(f"{sink.name} rejected {len(res.rejected)} re-embedded documents: {list(res.rejected.items())[:3]}")
    return len(out), extracted


def run_chunk(settings: Settings, registry: ModelRegistry, source: str, target: str, slice_id: int, slices: int,
              batch: int, progress: Callable[[int], None]) -> dict[str, int]:
    entry = registry.get(target)
    sinks = target_sinks(settings, target)
    for sink in sinks:
        sink.ensure()
    done = extracted = 0
    for page in scan_slice(settings, source, slice_id, slices, batch):
        n, x = reembed_docs(settings, entry, page, sinks)
        done += n
        extracted += x
        progress(done)
    return {"chunk": slice_id, "done": done, "extracted": extracted}


def catch_up(settings: Settings, registry: ModelRegistry, source: str, target: str) -> dict[str, int]:
    """Bring the target level with the source after the chunks: videos ingested meanwhile (live
    writes reach the target too, but embedded with the old model), newer versions, deletions."""
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
        fixed += reembed_docs(settings, entry, [d["_source"] for d in docs if d.get("found")], sinks)[0]
    if gone:
        for sink in sinks:
            sink.remove(gone)
    client.indices.refresh(index=index_name(settings.indexer.index_prefix, target))
    return {"caught_up": fixed, "removed": len(gone)}
