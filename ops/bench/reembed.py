"""`vidsearch bench reembed`: re-embedding from stored base features against full re-extraction,
on the same real videos in the same run, through the job's own code path (`reembed_docs`: base
features -> target embedder -> both sinks); then whole jobs (Celery chord, gate, swap) with 1 and
2 worker processes.

Videos: Tux Paint stamps rendered to mp4 (real decode, ASR, OCR and vision work). The target
model is a real fusion head exported to ONNX. "Full" forces re-extraction by giving the target
different encoder versions than the stored features, exactly as a new backbone would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidsearch.core.settings import Settings
from vidsearch.ops.reembed.payload import worker_env


def _model(out: Path, version: str, encoder_versions: dict[str, str]) -> Path:
    import torch

    from vidsearch.encoders.balanced.export import export_towers
    from vidsearch.encoders.balanced.towers import QueryTower, VideoTower

    torch.manual_seed(0)
    export_towers(VideoTower(), QueryTower(), out)
    (out / "card.json").write_text(json.dumps({"version": version, "encoder_versions": encoder_versions, "metrics": {}}))
    return out


def run(settings: Settings, videos: int = 24, replicas: int = 40, progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    from vidsearch.connector.app import feature_store, make_writer
    from vidsearch.connector.bulk import Item, write_items
    from vidsearch.ops.datasets.format import load_dataset
    from vidsearch.ops.datasets.tuxpaint import build
    from vidsearch.ops.reembed.job import start
    from vidsearch.ops.reembed.state import JobStore
    from vidsearch.ops.reembed.work import reembed_docs, target_writer
    from vidsearch.ops.registry.registry import ModelRegistry

    name = f"bench_reembed_{uuid.uuid4().hex[:6]}"
    work = settings.stack.cache_dir / "bench" / name
    media_dir = settings.stack.cache_dir / "bench" / "reembed-media"
    progress(f"rendering {videos} Tux Paint videos (cached in {media_dir})")
    build(media_dir, limit=videos)
    ds = load_dataset(media_dir)
    idx = settings.indexer.model_copy(update={
        "index_prefix": name.replace("_", "-"), "collection_prefix": name, "model_version": "default-v1",
        "feature_store": work / "features",
        "media_policy": settings.indexer.media_policy.model_copy(update={"roots": (media_dir.resolve(),)})})
    re_ = settings.reembed.model_copy(update={"queue": name, "chunks": 4, "batch_size": 200, "gate_queries": 0,
                                              "min_overlap": 0.0})
    s = settings.model_copy(update={"indexer": idx, "reembed": re_})
    registry = ModelRegistry(s)
    sources: list[dict[str, Any]] = [{"video_id": v.video_id, "version": 1, "title": v.title, "description": v.description, "tags": [],
                "media_uri": str(ds.media_path(v).resolve())} for v in ds.videos]

    # stored base features come from a first extraction (what the indexer did at ingest time)
    from vidsearch.encoders.extract import FeatureExtractor

    extractor = FeatureExtractor.load(s)
    store = feature_store(s)
    feats = {}
    for src in sources:
        f = extractor.extract(src["media_uri"], video_id=src["video_id"], title=src["title"], description=src["description"])
        store.put(src["video_id"], 1, f)
        feats[src["video_id"]] = f
    versions = next(iter(feats.values())).encoder_versions
    head = registry.register(_model(work / "head", f"bench-head-{uuid.uuid4().hex[:6]}", versions))
    full = registry.register(_model(work / "full", f"bench-full-{uuid.uuid4().hex[:6]}",
                                    {**versions, "vision": versions.get("vision", "") + "+new-backbone"}))
    try:
        import vidsearch.ops.reembed.work as work_mod

        work_mod._extractor(s.model_dump_json())  # warm the worker-side extractor (loading is not re-embedding)
        progress("full re-extraction")
        writer_full = target_writer(s, full)
        writer_full.ensure()
        t0 = time.perf_counter()
        n_full, extracted = reembed_docs(s, full, sources, writer_full)
        full_vps = n_full / (time.perf_counter() - t0)
        assert extracted == len(sources), "the full path must re-extract every video"
        progress("head only, from stored features")
        writer_head = target_writer(s, head)
        writer_head.ensure()
        reembed_docs(s, head, sources[:4], writer_head)  # warm-up: ONNX sessions
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            n_head, _ = reembed_docs(s, head, sources, writer_head)
            best = min(best, time.perf_counter() - t0)
        head_vps = n_head / best

        # whole jobs with 1 and 2 workers: the same features, replicated to give the chord work
        progress(f"catalogue of {videos * replicas} videos for the worker runs")
        items = []
        for r in range(replicas):
            for vid, f in feats.items():
                g = type(f).from_bytes(f.to_bytes())
                g.video_id = f"{vid}-r{r}"
                store.put(g.video_id, 1, g)
                items.append(Item(g))
        write_items(make_writer(s, frame_index=False), items, batch=500)  # re-embedding never reads frames
        by_workers: dict[str, float] = {}
        for n_workers in (1, 2):
            model = registry.register(_model(work / f"w{n_workers}", f"bench-w{n_workers}-{uuid.uuid4().hex[:6]}", versions))
            # workers build their settings from their own environment, never from the task payload
            env = {**os.environ, **worker_env(s), "VIDSEARCH_REEMBED__QUEUE": name}
            procs = [subprocess.Popen([sys.executable, "-m", "celery", "-A", "vidsearch.ops.celery_app", "worker",
                                       "--pool=solo", f"--queues={name}", f"--hostname={name}-{n_workers}-{i}@%h",
                                       "--without-gossip", "--without-mingle", "--loglevel=ERROR"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(n_workers)]
            try:
                time.sleep(4)  # workers up
                t0 = time.perf_counter()
                job = start(s, model.id)
                jobs = JobStore(registry)
                while (st := jobs.status(job.id)) and st["state"] not in ("swapped", "failed"):
                    time.sleep(0.2)
                elapsed = time.perf_counter() - t0
                by_workers[str(n_workers)] = round(len(items) / elapsed, 1)
                final = st["state"] if st else "no status"
                progress(f"{n_workers} worker(s): {by_workers[str(n_workers)]} videos/s ({final})")
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.wait(30)
        return {"videos": len(sources), "head_only_vps": round(head_vps, 1), "full_vps": round(full_vps, 2),
                "speedup": round(head_vps / full_vps, 1), "workers": by_workers, "worker_catalogue": len(items),
                "targets": {"speedup_ge_20": head_vps / full_vps >= 20}}
    finally:
        from vidsearch.ops.reembed.swap import drop_version

        for e in registry.list():
            drop_version(s, e.id)
        registry.r.delete(*registry.r.keys(f"{registry.prefix}*"))
