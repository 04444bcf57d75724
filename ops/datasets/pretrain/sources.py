"""One reader per packaged source, each yielding `SourceImage`s: an image file, its names by
language, and a concept `group` shared by every picture of the same emoji (so training can treat
the Google, Twitter, OpenMoji and Fluent drawings of one emoji as co-relevant, not as negatives).

Skin-tone variants are left out: they are the same concept drawn almost identically, and would
only crowd each batch with near-duplicates.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vidsearch.ops.datasets.pretrain.packages import EMOJI_GOOGLE, EMOJI_TWITTER, FLUENT_3D, OPENMOJI, NpmPackage, unpacked

# The languages `emoji` (PyPI) carries CLDR names for, in the codes the text encoders' users type.
EMOJI_LANGUAGES = ("de", "fr", "es", "it", "pt", "ja", "zh", "ko", "ru", "tr", "ar", "fa", "id")
SKIN_TONES = {f"1f3f{c}" for c in "bcdef"}
LICENCES = {"tuxpaint": "GPL-2.0-or-later (Debian tuxpaint-stamps-default)", "emoji-names": "BSD-3-Clause (PyPI emoji; CLDR names)"}


@dataclass(frozen=True)
class SourceImage:
    key: str
    source: str
    path: Path
    group: str
    texts: dict[str, list[str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.texts["en"][0]


def hex_key(seq: str) -> str:
    """Unicode sequence key without variation selectors: '0023-FE0F-20E3' -> '0023-20e3'."""
    parts = [p.lower().lstrip("0") or "0" for p in re.split(r"[-_ ]", seq) if p]
    return "-".join(p for p in parts if p != "fe0f")


def _char(seq: str) -> str:
    return "".join(chr(int(p, 16)) for p in re.split(r"[-_ ]", seq) if p)


def _clean(name: str) -> str:
    return re.sub(r"\s+", " ", name.strip(":").replace("_", " ")).strip()


def emoji_names(seq: str) -> dict[str, list[str]]:
    """CLDR names by language from PyPI `emoji`, tolerant of the sequence with or without FE0F."""
    import emoji

    emoji.config.load_language(list(EMOJI_LANGUAGES))
    for candidate in (_char(seq), _char(seq.replace("-fe0f", "").replace("-FE0F", "")), _char(seq) + "\ufe0f"):
        data = emoji.EMOJI_DATA.get(candidate)
        if data:
            out = {"en": [_clean(data["en"])]}
            for lang in EMOJI_LANGUAGES:
                if data.get(lang):
                    out[lang] = [_clean(data[lang])]
            return out
    return {}


def merge_texts(*texts: dict[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in texts:
        for lang, names in t.items():
            for n in names:
                if n and n.lower() not in {x.lower() for x in out.get(lang, [])}:
                    out.setdefault(lang, []).append(n)
    return out


def _has_skin_tone(key: str) -> bool:
    return bool(SKIN_TONES & set(key.split("-")))


def emoji_datasource(pkg: NpmPackage, cache_dir: Path) -> Iterator[SourceImage]:
    root = unpacked(pkg, cache_dir)
    style = pkg.name.rsplit("-", 1)[-1]
    for entry in json.loads((root / "emoji.json").read_text()):
        path = root / "img" / style / "64" / entry["image"]
        if not entry.get(f"has_img_{style}") or not path.exists():
            continue
        key = hex_key(entry["unified"])
        own = {"en": [entry["name"].lower()] if entry.get("name") else [_clean(entry["short_name"])]}
        yield SourceImage(f"{pkg.name}:{key}", pkg.name, path, key, merge_texts(emoji_names(entry["unified"]), own))


def fluent_3d(cache_dir: Path) -> Iterator[SourceImage]:
    root = unpacked(FLUENT_3D, cache_dir)
    for path in sorted((root / "assets").glob("*.webp")):
        key = hex_key(path.stem)
        if _has_skin_tone(key):
            continue
        names = emoji_names(path.stem)
        if names:
            yield SourceImage(f"fluent-emoji-3d:{key}", "fluent-emoji-3d", path, key, names)


def openmoji(cache_dir: Path) -> Iterator[SourceImage]:
    root = unpacked(OPENMOJI, cache_dir)
    with (root / "data" / "openmoji.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            path = root / "color" / "svg" / f"{row['hexcode']}.svg"
            if row["skintone"] or not row["annotation"] or not path.exists():
                continue
            key = hex_key(row["hexcode"])
            tags = ", ".join(t.strip() for t in (row["tags"] + "," + row["openmoji_tags"]).split(",") if t.strip())
            own = {"en": [row["annotation"]] + ([tags] if tags else [])}
            yield SourceImage(f"{OPENMOJI.name}:{key}", OPENMOJI.name, path, key, merge_texts(own, emoji_names(row["hexcode"])))


def _lang(code: str) -> str:
    """Tux Paint's locale codes ('zh_CN', 'ca@valencia') as the two-letter codes the corpus uses."""
    return re.split(r"[_@]", code)[0]


def tuxpaint_train() -> Iterator[SourceImage]:
    """Tux Paint stamps of the train split only: validation and test stamps and their captions are
    the evaluation's queries and answers, and must never be seen in pretraining."""
    from vidsearch.ops.datasets.stamps import stamps
    from vidsearch.ops.datasets.tuxpaint import captions_by_language, split_of, video_id

    for stamp in stamps():
        if split_of(stamp.caption) != "train":
            continue
        texts: dict[str, list[str]] = {"en": [stamp.caption]}
        for code, text in captions_by_language(stamp.png).items():
            if not code.startswith("en"):
                texts.setdefault(_lang(code), []).append(text)
        yield SourceImage(f"tuxpaint:{video_id(stamp)}", "tuxpaint", stamp.png, tux_group(stamp.caption), texts)


def tux_group(caption: str) -> str:
    """The concept key of a Tux Paint caption: stamps, their renders and (with `pretrain
    --in-domain`) their videos' keyframes share it, so they are co-relevant, never negatives."""
    return "tux:" + caption.lower().strip(" .")


SOURCES = ("fluent-emoji-3d", "openmoji", "emoji-datasource-google", "emoji-datasource-twitter", "tuxpaint")
PACKAGES = {"fluent-emoji-3d": FLUENT_3D, "openmoji": OPENMOJI, "emoji-datasource-google": EMOJI_GOOGLE,
            "emoji-datasource-twitter": EMOJI_TWITTER}


def read_source(name: str, cache_dir: Path) -> Iterator[SourceImage]:
    if name == "fluent-emoji-3d":
        return fluent_3d(cache_dir)
    if name == "openmoji":
        return openmoji(cache_dir)
    if name in ("emoji-datasource-google", "emoji-datasource-twitter"):
        return emoji_datasource(PACKAGES[name], cache_dir)
    if name == "tuxpaint":
        return tuxpaint_train()
    raise ValueError(f"unknown source {name!r}; known: {', '.join(SOURCES)}")


def licence_of(name: str) -> str:
    return PACKAGES[name].licence if name in PACKAGES else LICENCES[name]
