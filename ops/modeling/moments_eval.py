"""`vidsearch eval --moments`: does search land on the right video AND on the right seconds of it?

The split's videos are written through the indexer's document writer into a throwaway catalogue
in an embedded milvus-lite file (retrieval_eval.indexed_retriever, the same path as the retrieval
rows); each query runs through the API's retriever with moments on and its default fusion, and
the top hits are compared with the query's ground truth, a video and a span of it (the shot of
`vidsearch dataset moments`). Every figure is a percentage of the queries:

  r1, r10            the right video at rank 1 / within the top 10
  r1_iou50, r1_iou70 the top-1 hit is the right video AND its moment overlaps the ground truth
                     with IoU >= 0.5 / 0.7
  miou               mean IoU of the top-1 moment (0 when the top-1 video is wrong)
  iou50_when_found   among queries whose top-1 video is right, the share whose moment has IoU >= 0.5

r1_iou50 = r1 x iou50_when_found: the first factor is the ranking's, the second the moments'. Two
diagnostics isolate the moments from the ranking, on every query: `gt_video_iou50` is the share
whose moment, computed on the right video's stored document whatever its rank, has IoU >= 0.5, and
`legacy_gt_video_iou50` the same with the keyframe windows used before shots.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.core.store import VideoStore
from vidsearch.encoders.features import VideoFeatures
from vidsearch.ops.datasets.format import Dataset, DatasetError, QueryRecord
from vidsearch.plugins.retrieval.moments import Moment, best_moment
from vidsearch.plugins.retrieval.request import SearchRequest
from vidsearch.plugins.retrieval.retriever import Retriever

K = 10
STORE = "milvus-lite"
Span = tuple[float, float]


@dataclass(frozen=True)
class Outcome:
    """One query: where the right video ranked (None: not in the top K) and the IoU of the
    top-1 moment with the ground truth (0 when the top-1 video is wrong or has no moment)."""

    rank: int | None
    iou: float
    gt_video_iou: float = 0.0  # the moment on the right video, whatever its rank
    legacy_gt_video_iou: float = 0.0  # the same with keyframe windows
    query_id: str = ""
    top: str | None = None  # the top-1 video
    moment: Span | None = None  # the top-1 hit's moment

    def detail(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "rank": self.rank, "top": self.top,
                "moment": list(self.moment) if self.moment else None, "iou": round(self.iou, 3),
                "gt_video_iou": round(self.gt_video_iou, 3), "legacy_gt_video_iou": round(self.legacy_gt_video_iou, 3)}


def iou(a: Span, b: Span) -> float:
    """Temporal intersection over union of two (start, end) spans; 0 for empty or disjoint ones."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 and inter > 0 else 0.0


def moment_iou(moment: Moment | None, truth: Span) -> float:
    return iou((moment.start, moment.end), truth) if moment is not None else 0.0


def _pct(flags: Sequence[bool]) -> float:
    return round(100.0 * float(np.mean(flags)), 2) if len(flags) else 0.0


def r1_at_iou(outcomes: Sequence[Outcome], threshold: float) -> float:
    """Percent of queries whose top-1 hit is the right video with a moment of IoU >= threshold."""
    return _pct([o.rank == 1 and o.iou >= threshold for o in outcomes])


def summarize(outcomes: Sequence[Outcome]) -> dict[str, float]:
    found = [o for o in outcomes if o.rank == 1]
    return {
        "r1": _pct([o.rank == 1 for o in outcomes]),
        "r10": _pct([o.rank is not None and o.rank <= K for o in outcomes]),
        "r1_iou50": r1_at_iou(outcomes, 0.5),
        "r1_iou70": r1_at_iou(outcomes, 0.7),
        "miou": round(100.0 * float(np.mean([o.iou if o.rank == 1 else 0.0 for o in outcomes])), 2) if outcomes else 0.0,
        "iou50_when_found": _pct([o.iou >= 0.5 for o in found]),
        "found": len(found),
        "gt_video_iou50": _pct([o.gt_video_iou >= 0.5 for o in outcomes]),
        "legacy_gt_video_iou50": _pct([o.legacy_gt_video_iou >= 0.5 for o in outcomes]),
        "queries": len(outcomes),
    }


def _legacy(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A stored document as it was before shots: keyframes without their shot, transcript only."""
    frames = [{k: v for k, v in f.items() if k != "shot"} for f in doc.get("keyframes") or []]
    segments = [s for s in doc.get("segments") or [] if s.get("kind", "asr") == "asr"]
    return frames, segments


def run_query(retriever: Retriever, q: QueryRecord, docs: dict[str, dict[str, Any]]) -> Outcome:
    """Search as a user would (default fusion, moments on), then the diagnostics on the right
    video's stored document (`docs`, fetched once)."""
    if q.moment is None:
        raise DatasetError(f"query {q.query_id!r} has no moment")
    truth, target = q.moment, q.relevant[0]
    res = retriever.search(SearchRequest(q=q.text, k=K))
    ids = [h.video_id for h in res.hits]
    rank = ids.index(target) + 1 if target in ids else None
    top = res.hits[0] if res.hits else None
    top_iou = moment_iou(top.moment, truth) if top is not None and top.video_id == target else 0.0
    doc = docs.get(target, {})
    raw, _ = retriever.encoder.encode(q.text)
    embed = retriever.encoder.embed_texts
    mine = best_moment(raw, doc.get("keyframes") or [], doc.get("segments") or [], doc.get("duration"), embed)
    old = best_moment(raw, *_legacy(doc), doc.get("duration"), embed)
    shown = (top.moment.start, top.moment.end) if top is not None and top.moment is not None else None
    return Outcome(rank, top_iou, moment_iou(mine, truth), moment_iou(old, truth), q.query_id,
                   top.video_id if top is not None else None, shown)


def _release(retriever: Retriever, workdir: Path) -> None:
    """Close the stores and stop the private milvus-lite server of the throwaway catalogue (it
    would otherwise outlive us for `milvus.lite_idle_s`, serving a deleted folder)."""
    from vidsearch.plugins.milvus import lite

    for store in {id(s): s for s in retriever.stores.values()}.values():
        if isinstance(store, VideoStore):
            store.close()
    for server in lite.servers():
        if str(server["file"]).startswith(str(workdir)):
            lite.stop(str(server["file"]))


def evaluate_moments(ds: Dataset, features: dict[str, VideoFeatures], settings: Settings, split: str = "test",
                     model_dir: Path | None = None) -> dict[str, Any]:
    """Index the split, run its moment queries, return the figures (see the module docstring)."""
    from vidsearch.ops.modeling.retrieval_eval import indexed_retriever

    videos, queries = ds.split(split)
    feats = [features[v.video_id] for v in videos if v.video_id in features]
    kept = [q for q in queries if q.moment is not None and q.relevant[0] in features]
    if not kept:
        raise DatasetError(f"{ds.root}: split {split!r} has no query with a moment whose video has features "
                           "(build one with `vidsearch dataset moments`)")
    with tempfile.TemporaryDirectory(prefix="vidsearch-moments-") as tmp:
        retriever = indexed_retriever(settings, model_dir, STORE, feats, Path(tmp))
        try:
            docs = retriever.fetch(sorted({q.relevant[0] for q in kept}))
            outcomes = [run_query(retriever, q, docs) for q in kept]
        finally:
            _release(retriever, Path(tmp))
    return {"split": split, "store": STORE, "fusion": SearchRequest.model_fields["fusion"].default,
            "videos": len(feats), "queries": len(kept), "k": K, "metrics": summarize(outcomes),
            "per_query": [o.detail() for o in outcomes]}
