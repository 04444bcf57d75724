"""`vidsearch dataset emoji`: an out-of-domain evaluation set in the Tux Paint format, from one
packaged emoji style.

The balanced towers learn from Tux Paint videos only, so how they do on pictures of another kind
says whether they generalise. One short mp4 per emoji of the chosen source (the icon on white,
with the Tux Paint videos' pan and zoom), the English CLDR or annotation name as the query
(identical names co-relevant), half the videos `text_rich` (title and description are names in
other languages, never one that contains the English name), half `text_poor` (a camera file
name). There is no train split: val and test by concept, so a choice made on this set's
validation never sees its test. Train the bridge head with `vidsearch pretrain --exclude-source`
on the same source to keep the style out of the head as well (the concepts still reach it through
the other styles' drawings of the same emoji).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from PIL import Image

from vidsearch.ops.datasets.format import DatasetError, QueryRecord, SplitName, VideoRecord, write_jsonl
from vidsearch.ops.datasets.pretrain.render import IconError, load_icon
from vidsearch.ops.datasets.pretrain.sources import SourceImage, read_source
from vidsearch.ops.datasets.stamps import SIZE, frames_of
from vidsearch.ops.datasets.video_io import write_mp4

EVAL_SOURCES = ("openmoji", "fluent-emoji-3d", "emoji-datasource-google", "emoji-datasource-twitter")
FPS = 10


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def split_of(name: str) -> SplitName:
    """Half validation, half test, by the query text (co-relevant videos share a split)."""
    return "val" if _h("ood-split:" + name.lower()) % 2 else "test"


def _leaks(text: str, name: str) -> bool:
    return name.lower().strip() in text.lower()


def foreign_names(image: SourceImage) -> list[str]:
    """Names in other languages that do not spell out the English one (Indonesian CLDR names are
    often the English words), in a fixed language order."""
    name = image.name
    return [n for lang in sorted(image.texts) if lang != "en" for n in image.texts[lang][:1] if n and not _leaks(n, name)]


def metadata(image: SourceImage, rich: bool) -> tuple[str, str]:
    h = _h("ood-meta:" + image.key)
    if not rich:
        day, minute = h % 28 + 1, h % 1440
        return f"VID_2025{h % 12 + 1:02d}{day:02d}_{minute // 60:02d}{minute % 60:02d}", ""
    names = foreign_names(image)
    title = names[h % len(names)]
    rest = [n for n in names if n != title]
    return title, rest[h % len(rest)] if rest else ""


def video_id(image: SourceImage) -> str:
    return "emoji-" + re.sub(r"[^a-z0-9]+", "-", image.key.lower()).strip("-")


def framed(icon: Image.Image) -> Image.Image:
    """The icon centred on white at the videos' aspect ratio (stretching a square icon to 4:3
    would distort it)."""
    w, h = SIZE
    side = min(w, h) * 4 // 5
    icon = icon.convert("RGBA").resize((side, side))
    canvas = Image.new("RGBA", SIZE, (255, 255, 255, 255))
    canvas.alpha_composite(icon, ((w - side) // 2, (h - side) // 2))
    return canvas


def select(images: list[SourceImage], limit: int | None) -> list[SourceImage]:
    """`limit` images spread evenly over the source's (sorted) keys; all when no limit."""
    images = sorted(images, key=lambda i: i.key)
    if not limit or limit >= len(images):
        return images
    step = len(images) / limit
    return [images[int(i * step)] for i in range(limit)]


def build(out: Path, cache_dir: Path, source: str = "openmoji", limit: int | None = 400, seconds: float = 3.0,
          progress: Callable[[Iterable[SourceImage], int], Iterable[SourceImage]] | None = None) -> dict[str, object]:
    """Render and describe the set into `out` (mp4s are reused). Returns counts."""
    if source not in EVAL_SOURCES:
        raise DatasetError(f"unknown emoji source {source!r}; use one of {', '.join(EVAL_SOURCES)}")
    usable = [i for i in read_source(source, cache_dir) if i.texts.get("en") and foreign_names(i)]
    chosen = select(usable, limit)
    if not chosen:
        raise DatasetError(f"{source}: no emoji with names in English and another language")
    out.mkdir(parents=True, exist_ok=True)
    videos: list[VideoRecord] = []
    by_name: dict[str, list[str]] = {}
    unreadable = 0
    for image in progress(chosen, len(chosen)) if progress else chosen:
        vid = video_id(image)
        media = out / "media" / f"{vid}.mp4"
        if not media.exists() or media.stat().st_size == 0:
            try:
                icon = load_icon(image.path)
            except IconError:
                unreadable += 1
                continue
            media.parent.mkdir(parents=True, exist_ok=True)
            tmp = media.with_suffix(".part.mp4")
            write_mp4(tmp, frames_of(framed(icon), seconds), FPS)
            tmp.replace(media)
        rich = _h("ood-subset:" + image.key) % 2 == 0
        title, description = metadata(image, rich)
        videos.append(VideoRecord(video_id=vid, path=f"media/{vid}.mp4", title=title, description=description,
                                  subset="text_rich" if rich else "text_poor", split=split_of(image.name),
                                  caption=image.name, category=source, has_sound=False))
        by_name.setdefault(image.name, []).append(vid)
    queries = [QueryRecord(query_id=f"e{i:04d}", text=name, relevant=ids) for i, (name, ids) in enumerate(sorted(by_name.items()))]
    write_jsonl(out / "videos.jsonl", videos)
    write_jsonl(out / "queries.jsonl", queries)
    return {"source": source, "videos": len(videos), "queries": len(queries), "unreadable": unreadable,
            **{f"{s}_videos": sum(v.split == s for v in videos) for s in ("val", "test")},
            "text_poor": sum(v.subset == "text_poor" for v in videos)}
