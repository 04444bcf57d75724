"""`vidsearch eval --copies`: same-source search measured on a `dataset copies` folder.

Every reference video is fingerprinted and written to a real frame index (a milvus-lite file in
a temp folder, through `MilvusFrameStore`, as ingestion writes it); every query of the split is
searched with `CopySearcher` exactly as `vidsearch copies FILE` does (its keyframes and their
mirror images). Measures, as the VCSL benchmark defines them (plugins/copies/metrics.py):
segment-level precision, recall and F1 over (query, reference) pairs, video-level mAP, the share
of negative queries with any match, and storage: frame vectors per video-hour of the catalogue.

Two keyframe policies are compared on the same footage: `scene` (the decoder's scene-change
keyframes, what ingestion stores) and `uniform` (one frame per second, the usual baseline).
Backbone features are cached per video and policy beside the dataset, so changing the whitening
or the search parameters re-runs in seconds. Choices (method, thresholds, whitening) are made on
`val`; `test` is only reported.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vidsearch.core.errors import VidsearchError
from vidsearch.core.frames import FrameSet
from vidsearch.core.settings import Settings
from vidsearch.encoders.fingerprint import Fingerprinter, configured_fingerprinter, frame_set
from vidsearch.plugins.copies.metrics import Box, mean_average_precision, overall_segment_prf
from vidsearch.plugins.copies.search import CopyMatch, CopyParams, CopySearcher, copy_params

log = logging.getLogger(__name__)
Policy = Literal["scene", "uniform"]
POLICIES: tuple[Policy, ...] = ("scene", "uniform")
UNIFORM_FPS = 1.0
Track = Callable[[Sequence[Any], int], Iterable[Any]]  # rich.track-style: (items, total) -> items


class CopyDatasetError(VidsearchError):
    """A copies dataset folder is missing files or has records of another format."""


@dataclass(frozen=True)
class Raw:
    """What the backbone saw of one video under one keyframe policy (cached)."""

    times: np.ndarray
    features: np.ndarray  # (n, 1280)
    mirrored: np.ndarray  # (n, 1280) features of the frames flipped left-right ((0, 1280) for references)
    shots: list[tuple[float, float]]
    duration: float


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise CopyDatasetError(f"{path} is missing: build the dataset with `vidsearch dataset copies --out DIR`")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_copies_dataset(root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    manifest = root / "manifest.json"
    if not manifest.exists() or json.loads(manifest.read_text()).get("format") != "vidsearch.copies/1":
        raise CopyDatasetError(f"{root} is not a `vidsearch dataset copies` folder (manifest.json format vidsearch.copies/1)")
    return _records(root / "references.jsonl"), _records(root / "queries.jsonl")


def _extract(path: Path, policy: Policy, mirrored: bool, settings: Settings, vision: Any) -> Raw:
    from vidsearch.encoders.media.decode import frames_and_shots, probe
    from vidsearch.ops.datasets.video_io import read_frames

    info = probe(path, settings.media)
    selection = frames_and_shots(path, settings.media, info)
    if policy == "scene":
        times = np.array([k.t for k in selection.keyframes], np.float32)
        frames = [k.rgb for k in selection.keyframes]
    else:
        stack, _ = read_frames(path, UNIFORM_FPS, 640)
        frames = list(stack)
        times = np.arange(len(frames), dtype=np.float32) / UNIFORM_FPS
    feats = vision.encode(frames).features if frames else np.zeros((0, 1280), np.float32)
    flipped = (vision.encode([np.ascontiguousarray(f[:, ::-1]) for f in frames]).features
               if mirrored and frames else np.zeros((0, feats.shape[1]), np.float32))
    return Raw(times, feats, flipped, list(selection.shots), float(info.duration_s))


def _cached(cache: Path, key: str, make: Callable[[], Raw]) -> Raw:
    file = cache / f"{key}.npz"
    if file.exists():
        with np.load(file, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return Raw(z["times"], z["features"], z["mirrored"], [tuple(s) for s in meta["shots"]], meta["duration"])
    raw = make()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp.npz")
    with open(tmp, "wb") as fh:
        np.savez(fh, times=raw.times, features=raw.features, mirrored=raw.mirrored,
                 meta=np.array(json.dumps({"shots": raw.shots, "duration": raw.duration})))
    tmp.replace(file)
    return raw


def extract_all(root: Path, settings: Settings, records: Sequence[dict[str, Any]], id_key: str, policy: Policy,
                mirrored: bool, progress: Track | None = None) -> dict[str, Raw]:
    """Backbone features of every record's video under `policy`, cached in `root/copy-features`."""
    from vidsearch.encoders.serving import load_vision_encoder

    vision: Any = None
    out: dict[str, Raw] = {}
    cache = root / "copy-features" / policy
    for rec in (progress(records, len(records)) if progress else records):
        def make(rec: dict[str, Any] = rec) -> Raw:
            nonlocal vision
            if vision is None:
                vision = load_vision_encoder(settings)
            return _extract(root / rec["path"], policy, mirrored, settings, vision)

        out[rec[id_key]] = _cached(cache, f"{'q' if mirrored else 'r'}-{rec[id_key]}", make)
    return out


def _query_set(qid: str, raw: Raw, fp: Fingerprinter) -> tuple[FrameSet, np.ndarray]:
    fs = frame_set(qid, 0, raw.times, raw.features, raw.shots, fp)
    order = np.argsort(raw.times, kind="stable")
    mirrored = fp(raw.mirrored[order]) if len(raw.mirrored) else None
    return fs, mirrored if mirrored is not None else np.zeros((0, fp.dim), np.float32)


def gt_boxes(query: dict[str, Any]) -> dict[str, list[Box]]:
    out: dict[str, list[Box]] = {}
    for s in query["segments"]:
        out.setdefault(s["reference_id"], []).append(
            (s["query_start"], s["query_end"], s["reference_start"], s["reference_end"]))
    return out


def score_queries(queries: Sequence[dict[str, Any]], results: dict[str, list[CopyMatch]]) -> dict[str, Any]:
    """VCSL metrics over the split's queries (pure: results in, figures out)."""
    pairs: list[tuple[list[Box], list[Box]]] = []
    runs: list[tuple[list[str], set[str]]] = []
    negatives = false_hits = 0
    for q in queries:
        matches = results.get(q["query_id"], [])
        gt = gt_boxes(q)
        predicted = {m.reference_id: [(s.query_start, s.query_end, s.reference_start, s.reference_end) for s in m.segments]
                     for m in matches}
        for ref in set(gt) | set(predicted):
            pairs.append((predicted.get(ref, []), gt.get(ref, [])))
        runs.append(([m.reference_id for m in matches], set(gt)))
        if q["kind"] == "negative":
            negatives += 1
            false_hits += bool(matches)
    seg = overall_segment_prf(pairs)
    return {"queries": len(queries), "negatives": negatives,
            "segment_precision": round(seg["precision"], 4), "segment_recall": round(seg["recall"], 4),
            "segment_f1": round(seg["f1"], 4), "video_map": round(mean_average_precision(runs), 4),
            "false_match_rate": round(false_hits / negatives, 4) if negatives else None}


def _index(settings: Settings, fp: Fingerprinter, refs: dict[str, Raw], folder: Path) -> Any:
    from vidsearch.plugins.milvus.frames import MilvusFrameStore

    s = settings.model_copy(update={"milvus": settings.milvus.model_copy(update={"uri": str(folder / "frames.db")})})
    store = MilvusFrameStore(s, "eval_frames", dim=fp.dim)
    store.ensure()
    for vid, raw in refs.items():
        store.write(frame_set(vid, 1, raw.times, raw.features, raw.shots, fp))
    return store


def evaluate_copies(root: Path, settings: Settings, split: str = "test", methods: Sequence[str] = ("tn", "dp"),
                    policies: Sequence[Policy] = POLICIES, fingerprinter: Fingerprinter | None = None,
                    params: CopyParams | None = None, progress: Callable[[str], Track] | None = None,
                    ) -> dict[str, Any]:
    refs, queries = load_copies_dataset(root)
    queries = [q for q in queries if q["split"] == split]
    if not queries:
        raise CopyDatasetError(f"{root} has no {split} queries")
    fp = fingerprinter or configured_fingerprinter(settings)
    base = params or copy_params(settings.copies)
    hours = sum(float(r["duration"]) for r in refs) / 3600.0
    report: dict[str, Any] = {"data": str(root), "split": split, "references": len(refs), "fingerprint": fp.version,
                              "reference_hours": round(hours, 4), "rows": []}
    for policy in policies:
        ref_raw = extract_all(root, settings, refs, "video_id", policy, False, progress(f"references ({policy})") if progress else None)
        q_raw = extract_all(root, settings, queries, "query_id", policy, True, progress(f"queries ({policy})") if progress else None)
        vectors = sum(len(r.times) for r in ref_raw.values())
        with tempfile.TemporaryDirectory(prefix="vidsearch-copies-eval-") as tmp:
            store = _index(settings, fp, ref_raw, Path(tmp))
            try:
                for method in methods:
                    searcher = CopySearcher(store, replace(base, method=method))
                    results: dict[str, list[CopyMatch]] = {}
                    latencies = []
                    for q in queries:
                        fs, mirrored = _query_set(q["query_id"], q_raw[q["query_id"]], fp)
                        t0 = time.perf_counter()
                        results[q["query_id"]] = searcher.search(fs, mirrored=mirrored)
                        latencies.append((time.perf_counter() - t0) * 1000)
                    row = {"policy": policy, "method": method, "vectors": vectors,
                           "vectors_per_video_hour": round(vectors / hours, 1) if hours else None,
                           **score_queries(queries, results),
                           "query_ms_p50": round(float(np.percentile(latencies, 50)), 1)}
                    report["rows"].append(row)
            finally:
                store.drop()
                store.close()
    by = {(r["policy"], r["method"]): r for r in report["rows"]}
    if ("scene", methods[0]) in by and ("uniform", methods[0]) in by:
        scene, uniform = by[("scene", methods[0])], by[("uniform", methods[0])]
        report["storage_saving"] = round(1 - scene["vectors"] / max(uniform["vectors"], 1), 4)
    return report
