"""A small real catalogue for the retriever tests: real MiniLM vectors, written through the real
sinks into OpenSearch and Milvus (and optionally an embedded milvus-lite file)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidsearch.connector.app import make_writer
from vidsearch.connector.bulk import Item, write_items
from vidsearch.core.settings import Settings
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.speech import Segment

# video id -> (title, what the frames show, language, tags, duration, transcript)
CATALOGUE = {
    "fire-truck": ("VID_20240311_0423", "a red fire truck with a ladder", "en", ["vehicles"], 9.0, ""),
    "parade": ("Fire truck parade downtown", "a crowd watching a parade", "en", ["events"], 12.0, ""),
    "kitten": ("My cat", "a small kitten playing with yarn", "en", ["animals"], 6.0, "look at the kitten play"),
    "chaton": ("Un chaton", "a kitten sleeping on a sofa", "fr", ["animals"], 6.0, ""),
    "voiture": ("Une voiture", "a red sports car on a road", "fr", ["vehicles"], 8.0, ""),
    "sea": ("VID_20230101_1200", "waves on the sea at sunset", "en", ["nature"], 20.0, ""),
    "guitar": ("Lesson 4", "a person playing an acoustic guitar", "en", ["music"], 30.0, "now play the g chord on the guitar"),
    "pizza": ("Dinner", "a pizza coming out of an oven", "en", ["food"], 5.0, ""),
    "train": ("VID_20220505_0808", "a steam train crossing a bridge", "en", ["vehicles"], 15.0, ""),
    "snow": ("Hiver", "a snowy mountain with skiers", "fr", ["nature"], 25.0, ""),
    "dog": ("Good boy", "a dog catching a frisbee in a park", "en", ["animals"], 7.0, ""),
    "rocket": ("Launch day", "a rocket launching into space", "en", ["space"], 40.0, ""),
}
FILLER = ["an empty white wall", "a blurry grey background", "a dark room"]


@dataclass
class Catalogue:
    settings: Settings
    ids: list[str]


def features(text, vid: str, media: Path | None = None) -> VideoFeatures:  # noqa: ANN001 - TextEncoder
    title, shows, _lang, tags, duration, transcript = CATALOGUE[vid]
    frames = text.encode([FILLER[0], shows, FILLER[1]])
    times = np.array([0.0, duration / 2, duration - 1], np.float32)
    segs = [Segment(start=1.0, end=4.0, text=transcript)] if transcript else []
    meta, trans = text.encode([title, transcript])
    return VideoFeatures(video_id=vid, source=str(media) if media else "", duration_s=duration, title=title,
                         tags=list(tags), transcript=segs, keyframe_times=times, frame_bridge=frames.astype(np.float32),
                         frame_features=np.zeros((3, 1280), np.float32), text_metadata=meta, text_transcript=trans,
                         has_audio=bool(transcript))


def scoped(settings: Settings, name: str, **retrieval) -> Settings:  # noqa: ANN003
    idx = settings.indexer.model_copy(update={"index_prefix": name.replace("_", "-"), "collection_prefix": name,
                                              "model_version": "r1"})
    return settings.model_copy(update={"indexer": idx, "retrieval": settings.retrieval.model_copy(update=retrieval)})


def load(settings: Settings, text, media: Path | None = None, sinks: tuple[str, ...] = ("milvus", "opensearch")) -> list[str]:  # noqa: ANN001
    items = [Item(features(text, vid, media), language=CATALOGUE[vid][2], tags=CATALOGUE[vid][3]) for vid in CATALOGUE]
    write_items(make_writer(settings, sinks, frame_index=False), items)  # retrieval tests need no frame index
    return list(CATALOGUE)


def drop_catalogue(s: Settings) -> None:
    """Remove what a test created, in every store: the alias, then its version's index/collection."""
    from vidsearch.plugins.backends import names, open_store

    for name in names():
        store = open_store(name, s, timeout_s=30.0)
        try:
            store.drop_alias()
            store.drop(s.indexer.model_version)
        finally:
            store.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_app(s: Settings) -> Iterator[str]:
    """The real app (retriever on the real stores) under uvicorn on a free loopback port."""
    import threading
    import time

    import uvicorn

    from vidsearch.ops.api.app import create_app
    from vidsearch.plugins.retrieval.build import build_retriever

    srv = uvicorn.Server(uvicorn.Config(create_app(build_retriever(s), s), host="127.0.0.1", port=_free_port(), log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not srv.started:
        time.sleep(0.1)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{srv.config.port}"
    finally:
        srv.should_exit = True
        thread.join(10)
