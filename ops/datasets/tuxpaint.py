"""`vidsearch dataset tuxpaint`: the evaluation set built from Debian's tuxpaint-stamps-default.

One short mp4 per captioned PNG stamp (stamps.render: pan/zoom frames + the stamp's sound effect,
never the spoken description). The query is the English caption; identical captions are
co-relevant. Half the videos are `text_rich` (title/description carry the stamp's name, its
category or a non-English caption, never the English caption), half are `text_poor` (a camera
file name, no description), which is what modality balance is for (docs/architecture.md, "Data").

Splits are by caption hash, so co-relevant stamps never straddle train and test. Everything is a
pure function of the package contents, so two builds give the same folder; rendering is cached.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from vidsearch.ops.datasets.format import DatasetError, QueryRecord, SplitName, SubsetName, VideoRecord, write_jsonl
from vidsearch.ops.datasets.stamps import STAMPS, Stamp, render, stamps

MIN_TEST_VIDEOS = 150


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def video_id(stamp: Stamp) -> str:
    rel = stamp.png.relative_to(STAMPS).with_suffix("")
    return "tux-" + re.sub(r"[^a-z0-9]+", "-", str(rel).lower()).strip("-")


def split_of(caption: str) -> SplitName:
    """60/15/25 by caption, so identical captions share a split."""
    bucket = _h("split:" + caption.lower()) % 100
    return "train" if bucket < 60 else "val" if bucket < 75 else "test"


def captions_by_language(png: Path) -> dict[str, str]:
    """The translated captions in a stamp's .txt (`lang.utf8=...` lines after the English first
    line), by language code (`de`, `zh_CN`, `ca@valencia`), in file order."""
    out = {}
    for line in png.with_suffix(".txt").read_text(errors="replace").splitlines()[1:]:
        lang, sep, text = line.partition(".utf8=")
        text = text.strip()
        if sep and text and "=" not in lang:
            out[lang] = text
    return out


def foreign_captions(stamp: Stamp) -> list[str]:
    """Non-English captions from the stamp's .txt, sorted by language."""
    return [text for lang, text in captions_by_language(stamp.png).items() if not lang.startswith("en")]


def _leaks(text: str, caption: str) -> bool:
    return caption.lower().strip(" .") in text.lower()


def metadata(stamp: Stamp, subset: str) -> tuple[str, str]:
    """(title, description) for a video of this subset; text-rich never holds the English caption."""
    h = _h("meta:" + str(stamp.png))
    if subset == "text_poor":
        day, minute = h % 28 + 1, h % 1440
        return f"VID_2024{h % 12 + 1:02d}{day:02d}_{minute // 60:02d}{minute % 60:02d}", ""
    name = re.sub(r"[-_]+", " ", stamp.png.stem).strip()
    category = " / ".join(stamp.png.parent.relative_to(STAMPS).parts)
    foreign = [c for c in foreign_captions(stamp) if not _leaks(c, stamp.caption)]
    other = foreign[h % len(foreign)] if foreign else ""
    choice = h % 3
    title = name if choice == 0 or not other else other if choice == 1 else category
    description = " · ".join(x for x in (category if title != category else "", other if title != other else "") if x)
    if _leaks(title, stamp.caption):
        title = category
    if _leaks(description, stamp.caption):
        description = category if title != category else ""
    return title, description


def select(all_stamps: list[Stamp], limit: int | None) -> list[Stamp]:
    """All stamps, or `limit` of them spread evenly over categories (for CI-sized runs)."""
    if not limit or limit >= len(all_stamps):
        return all_stamps
    step = len(all_stamps) / limit
    return [all_stamps[int(i * step)] for i in range(limit)]


def build(out: Path, limit: int | None = None, seconds: float = 3.0,
          progress: Callable[[Iterable[Stamp], int], Iterable[Stamp]] | None = None) -> dict[str, int]:
    """Render and describe the dataset into `out`; existing mp4s are reused. Returns counts."""
    chosen = select(stamps(), limit)
    if not chosen:
        raise DatasetError(f"no captioned stamps under {STAMPS} (is tuxpaint-stamps-default installed?)")
    out.mkdir(parents=True, exist_ok=True)
    ordered = sorted(chosen, key=lambda s: _h("subset:" + str(s.png)))
    subset: dict[Path, SubsetName] = {s.png: ("text_poor" if i % 2 else "text_rich") for i, s in enumerate(ordered)}
    videos: list[VideoRecord] = []
    items: Iterable[Stamp] = progress(chosen, len(chosen)) if progress else chosen
    for stamp in items:
        vid = video_id(stamp)
        media = out / "media" / f"{vid}.mp4"
        if not media.exists() or media.stat().st_size == 0:
            tmp = media.with_suffix(".part.mp4")
            render(stamp, tmp, seconds)
            tmp.replace(media)
        title, description = metadata(stamp, subset[stamp.png])
        videos.append(VideoRecord(video_id=vid, path=f"media/{vid}.mp4", title=title, description=description,
                                  subset=subset[stamp.png], split=split_of(stamp.caption),
                                  caption=stamp.caption, category=stamp.category, has_sound=stamp.sound is not None))
    by_caption: dict[str, list[str]] = {}
    for stamp, v in zip(chosen, videos, strict=True):
        by_caption.setdefault(stamp.caption, []).append(v.video_id)
    queries = [QueryRecord(query_id=f"q{i:04d}", text=caption, relevant=ids)
               for i, (caption, ids) in enumerate(sorted(by_caption.items()))]
    write_jsonl(out / "videos.jsonl", videos)
    write_jsonl(out / "queries.jsonl", queries)
    counts = {f"{s}_videos": sum(v.split == s for v in videos) for s in ("train", "val", "test")}
    counts.update(videos=len(videos), queries=len(queries),
                  text_poor=sum(v.subset == "text_poor" for v in videos))
    if limit is None and counts["test_videos"] < MIN_TEST_VIDEOS:
        raise DatasetError(f"test split has {counts['test_videos']} videos (< {MIN_TEST_VIDEOS})")
    return counts
