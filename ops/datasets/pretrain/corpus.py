"""Assemble the pretraining corpus: read each source, hold out everything the evaluation uses,
drop near-identical images across sources, render each survivor `variants` times, and write
`pairs.jsonl` + `images/` + `manifest.json` (sources, versions, integrity hashes, licences, counts,
and a corpus hash that the shipped head records).

The held-out guard is what makes the evaluation honest: no image near-identical (`dedup`) to a
Tux Paint validation or test stamp, and no text equal to one of their captions (in any language),
ever enters, whatever source it comes from.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from vidsearch.ops.datasets.format import DatasetError
from vidsearch.ops.datasets.pretrain.dedup import MAX_DISTANCE, MAX_THUMB_DIFF, Signature, SignatureIndex, near_duplicates, signature
from vidsearch.ops.datasets.pretrain.packages import PACKAGES_BY_NAME
from vidsearch.ops.datasets.pretrain.render import IconError, load_icon, render
from vidsearch.ops.datasets.pretrain.sources import SOURCES, SourceImage, licence_of, merge_texts, read_source

log = logging.getLogger(__name__)
CORPUS_FORMAT = 1
VAL_SHARE = 10  # percent of concept groups kept for the head's own early stopping


def normalise(text: str) -> str:
    return " ".join(text.lower().strip().rstrip(".!?。").split())


@dataclass(frozen=True)
class HeldOut:
    """What the evaluation owns: Tux Paint validation and test stamps (hashes) and captions."""

    images: SignatureIndex
    texts: frozenset[str]

    def image_leaks(self, sig: Signature) -> bool:
        return self.images.find(sig) is not None

    def text_leaks(self, text: str) -> bool:
        return normalise(text) in self.texts


def held_out() -> HeldOut:
    from vidsearch.ops.datasets.stamps import stamps
    from vidsearch.ops.datasets.tuxpaint import captions_by_language, split_of

    images, texts = SignatureIndex(), set()
    for stamp in stamps():
        if split_of(stamp.caption) == "train":
            continue
        images.add(signature(load_icon(stamp.png)))
        texts.add(normalise(stamp.caption))
        texts.update(normalise(t) for t in captions_by_language(stamp.png).values())
    return HeldOut(images, frozenset(texts))


def _split(group: str) -> str:
    return "val" if int(hashlib.sha256(("pretrain:" + group).encode()).hexdigest()[:8], 16) % 100 < VAL_SHARE else "train"


def _without_leaks(item: SourceImage, guard: HeldOut) -> tuple[dict[str, list[str]], int]:
    kept, dropped = {}, 0
    for lang, names in item.texts.items():
        ok = [n for n in names if not guard.text_leaks(n)]
        dropped += len(names) - len(ok)
        if ok:
            kept[lang] = ok
    return kept, dropped


def build(out: Path, cache_dir: Path, sources: Iterable[str] = SOURCES, variants: int = 2, seed: int = 0,
          limit: int | None = None, progress: Callable[[Iterable, int], Iterable] | None = None) -> dict:
    """Write the corpus into `out` (rendered images are reused when present). Returns the counts."""
    names = list(sources)
    unknown = sorted(set(names) - set(SOURCES))
    if unknown:
        raise DatasetError(f"unknown corpus sources {unknown}; known: {', '.join(SOURCES)}")
    guard = held_out()
    items: list[SourceImage] = []
    for name in names:
        found = list(read_source(name, cache_dir))
        items.extend(found[:limit] if limit else found)
    counts: dict[str, Counter] = {n: Counter() for n in names}
    kept: list[tuple[SourceImage, dict[str, list[str]]]] = []
    sigs: list[Signature] = []
    loop = progress(items, len(items)) if progress else items
    for item in loop:
        c = counts[item.source]
        c["read"] += 1
        try:
            icon = load_icon(item.path)
        except IconError as exc:
            log.warning("%s: unreadable image %s: %s", item.key, item.path, exc)
            c["unreadable"] += 1
            continue
        sig = signature(icon)
        if guard.image_leaks(sig):
            c["held_out_images"] += 1
            continue
        texts, dropped = _without_leaks(item, guard)
        c["held_out_texts"] += dropped
        if "en" not in texts:
            c["no_english_text"] += 1
            continue
        kept.append((item, texts))
        sigs.append(sig)
    keeper = near_duplicates(sigs)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    # A near-identical picture is folded into the first one, names and all: the emoji sets hold
    # many pictures that differ in name only ("detective" and "man detective", look-alike flags).
    merged = [dict(texts) for _, texts in kept]
    for i, (item, texts) in enumerate(kept):
        k = keeper[i]
        if k is not None:
            counts[item.source]["near_duplicates"] += 1
            merged[k] = merge_texts(merged[k], texts)
    survivors = [(i, (kept[i][0], merged[i])) for i in range(len(kept)) if keeper[i] is None]
    loop2 = progress(survivors, len(survivors)) if progress else survivors
    digest = hashlib.sha256()
    for i, (item, texts) in loop2:
        drawn: Image.Image | None = None
        for v in range(variants):
            rel = f"images/{i:05d}-{v}.jpg"
            path = out / rel
            if not path.exists():
                drawn = drawn or load_icon(item.path)
                frame_seed = int(hashlib.sha256(f"{seed}:{item.key}:{v}".encode()).hexdigest()[:8], 16)
                render(drawn, frame_seed).save(path, "JPEG", quality=92)
            digest.update(path.read_bytes())
            rows.append({"id": f"{i:05d}-{v}", "key": item.key, "source": item.source, "group": item.group,
                         "split": _split(item.group), "image": rel, "variant": v, "texts": texts})
        counts[item.source]["pairs"] += variants
        counts[item.source]["images"] += 1
    pairs = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    (out / "pairs.jsonl").write_text(pairs)
    digest.update(pairs.encode())
    manifest = {
        "format": CORPUS_FORMAT,
        "corpus_hash": digest.hexdigest(),
        "seed": seed, "variants": variants, "limit": limit,
        "sources": {n: {**PACKAGES_BY_NAME.get(n, {}), "licence": licence_of(n), **dict(counts[n])} for n in names},
        "held_out": {"stamps": len(guard.images.items), "captions": len(guard.texts)},
        "near_identical": {"max_hash_distance": MAX_DISTANCE, "max_thumb_diff": MAX_THUMB_DIFF},
        "pairs": len(rows), "images": len(survivors),
        "splits": dict(Counter(r["split"] for r in rows)),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest
