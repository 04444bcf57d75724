"""`vidsearch dataset moments`: the moment benchmark, compilation videos of Tux Paint stamps.

Each video joins `SHOTS_PER_VIDEO` stamps with hard cuts; each stamp is one shot of 3.5 to 4.5 s
(the slow pan/zoom of stamps.py, its sound effect on the audio track, never the spoken
description). Shot lengths vary so cuts do not sit on the decoder's sampling grid. Titles are
camera file names and there is no description (tuxpaint's `text_poor`), so a video can only be
found by what it shows. One query per stamp, its English caption; the answer is the video AND the
shot's (start, end), which is what R1@IoU measures (ops/modeling/moments_eval.py).

Only stamps whose caption falls in val or test (tuxpaint.split_of) are used, so no caption a
model was trained on appears; each split's stamps fill their own videos, and a split keeps one
stamp per caption so every query has exactly one answer. A video's id carries a digest of its
stamps and shot lengths, so cached media and features are never reused for other contents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidsearch.ops.datasets.format import DatasetError, QueryRecord, SplitName, VideoRecord, write_jsonl
from vidsearch.ops.datasets.stamps import FPS, STAMPS, Stamp, frames, sound, stamps
from vidsearch.ops.datasets.tuxpaint import metadata, split_of
from vidsearch.ops.datasets.video_io import write_mp4

SHOTS_PER_VIDEO = 4
SPLITS: tuple[SplitName, ...] = ("val", "test")
AUDIO_RATE = 16_000


@dataclass(frozen=True)
class Compilation:
    video_id: str
    split: SplitName
    stamps: tuple[Stamp, ...]
    seconds: tuple[float, ...]  # each shot's length

    @property
    def shots(self) -> list[tuple[float, float]]:
        """(start, end) of each stamp's shot, in order."""
        out, t = [], 0.0
        for s in self.seconds:
            out.append((round(t, 3), round(t + s, 3)))
            t += s
        return out


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def shot_seconds(stamp: Stamp) -> float:
    """3.5 to 4.5 s in whole frames (a tenth of a second at 10 fps), fixed per stamp."""
    return 3.5 + (_h("shot:" + str(stamp.png)) % 11) / FPS


def plan(all_stamps: list[Stamp], limit: int | None = None) -> list[Compilation]:
    """The videos of both splits: per split, one stamp per caption, shuffled by a fixed hash,
    cut into groups of SHOTS_PER_VIDEO (a last, smaller group is left out); `limit` caps the
    number of videos per split."""
    out: list[Compilation] = []
    for split in SPLITS:
        by_caption: dict[str, Stamp] = {}
        for stamp in sorted(all_stamps, key=lambda s: str(s.png)):
            if split_of(stamp.caption) == split:
                by_caption.setdefault(stamp.caption.lower(), stamp)
        ordered = sorted(by_caption.values(), key=lambda s: _h("moments:" + str(s.png)))
        groups = [tuple(ordered[i:i + SHOTS_PER_VIDEO]) for i in range(0, len(ordered) - SHOTS_PER_VIDEO + 1, SHOTS_PER_VIDEO)]
        for group in groups[:limit] if limit else groups:
            seconds = tuple(shot_seconds(s) for s in group)
            key = "|".join(f"{s.png.relative_to(STAMPS)}:{sec:.1f}" for s, sec in zip(group, seconds, strict=True))
            out.append(Compilation(f"moments-{split}-{_h(key):012x}", split, group, seconds))
    return out


def render(c: Compilation, out: Path) -> Path:
    """Write the compilation: each stamp's frames for its shot length, hard cuts between them;
    each stamp's sound effect starts with its shot (cut or padded with silence to fit)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    shots: list[np.ndarray] = []
    tracks: list[np.ndarray] = []
    for stamp, seconds in zip(c.stamps, c.seconds, strict=True):
        shots.extend(frames(stamp.png, seconds))
        n = int(round(seconds * AUDIO_RATE))
        track = np.zeros(n, np.int16)
        if stamp.sound is not None:
            effect = sound(stamp.sound, AUDIO_RATE)[:n]
            track[:len(effect)] = effect
        tracks.append(track)
    has_sound = any(s.sound is not None for s in c.stamps)
    return write_mp4(out, shots, FPS, audio=np.concatenate(tracks) if has_sound else None, audio_rate=AUDIO_RATE)


def records(c: Compilation) -> tuple[VideoRecord, list[QueryRecord]]:
    """The video's record (with its ground-truth shots) and one query per stamp."""
    title = metadata(c.stamps[0], "text_poor")[0]
    shots = c.shots
    video = VideoRecord(video_id=c.video_id, path=f"media/{c.video_id}.mp4", title=title, description="",
                        subset="text_poor", split=c.split, shots=[list(s) for s in shots],
                        captions=[s.caption for s in c.stamps],
                        stamps=[str(s.png.relative_to(STAMPS)) for s in c.stamps])
    queries = [QueryRecord(query_id=f"{c.video_id}-{i}", text=s.caption, relevant=[c.video_id], moment=shot)
               for i, (s, shot) in enumerate(zip(c.stamps, shots, strict=True))]
    return video, queries


def build(out: Path, limit: int | None = None,
          progress: Callable[[Iterable[Compilation], int], Iterable[Compilation]] | None = None) -> dict[str, int]:
    """Render and describe the benchmark into `out`; existing mp4s are reused. Returns counts."""
    planned = plan(stamps(), limit)
    if not planned:
        raise DatasetError(f"no captioned val/test stamps under {STAMPS} (is tuxpaint-stamps-default installed?)")
    out.mkdir(parents=True, exist_ok=True)
    videos: list[VideoRecord] = []
    queries: list[QueryRecord] = []
    items: Iterable[Compilation] = progress(planned, len(planned)) if progress else planned
    for c in items:
        media = out / "media" / f"{c.video_id}.mp4"
        if not media.exists() or media.stat().st_size == 0:
            tmp = media.with_suffix(".part.mp4")
            render(c, tmp)
            tmp.replace(media)
        video, qs = records(c)
        videos.append(video)
        queries.extend(qs)
    write_jsonl(out / "videos.jsonl", videos)
    write_jsonl(out / "queries.jsonl", queries)
    counts = {f"{s}_videos": sum(v.split == s for v in videos) for s in SPLITS}
    counts.update({f"{s}_queries": sum(q.query_id.startswith(f"moments-{s}-") for q in queries) for s in SPLITS})
    counts.update(videos=len(videos), queries=len(queries), shots_per_video=SHOTS_PER_VIDEO)
    return counts
