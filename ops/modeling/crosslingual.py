"""Cross-lingual evaluation: the same videos, queried in other languages.

Tux Paint ships each stamp's caption translated into dozens of languages (the `lang.utf8=` lines
of its .txt). A query here is the English caption of its relevant videos; its translation in
language L is taken from the first relevant stamp that has one, and queries without a
translation are left out of L. Each language is compared with English **on the same queries**,
so a language with fewer translations is not judged on an easier or harder subset.

The videos and their features are those of the split as indexed, in the configured text
encoder's space: records made by another text encoder get their text vectors (metadata,
transcript, OCR) and vision bridge (the stored top ImageNet classes through the class names' text
vectors) encoded again, so with `encoders.text_model = "e5"` everything is in E5's multilingual
space.

Text-rich videos carry a non-English caption in their metadata by design of the dataset, so a
query in that very language can match it word for word; `text_poor` (camera-style titles) shows
what crossing languages costs when only the visual route can answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from vidsearch.core.settings import Settings
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.text import TextEncoder
from vidsearch.ops.datasets.format import Dataset, QueryRecord

LANGUAGES = ("de", "fr", "es", "ja", "zh_CN")
ROUTES = ("naive_fusion", "text_only")


def translated_queries(queries: Sequence[QueryRecord], translations: Callable[[str], dict[str, str]], lang: str) -> list[QueryRecord]:
    """The queries that have a `lang` translation, with that text (first relevant video that has
    one); `translations(video_id)` gives a video's captions by language."""
    out = []
    for q in queries:
        text = next((t for vid in q.relevant if (t := translations(vid).get(lang, "").strip())), "")
        if text:
            out.append(q.model_copy(update={"text": text}))
    return out


def _route_metrics(ds: Dataset, split: str, features: dict[str, VideoFeatures], text: TextEncoder,
                   queries: list[QueryRecord]) -> dict[str, Any]:
    from vidsearch.encoders.balanced.metrics import subset_metrics
    from vidsearch.ops.modeling.evaluation import model_configs
    from vidsearch.ops.modeling.splits import make_split

    sp, ids = make_split(dataclasses.replace(ds, queries=queries), split, features, text)
    configs = model_configs(None)
    feats = [features[i] for i in ids]
    return {route: subset_metrics(configs[route](sp, feats).scores, sp.relevant, sp.subsets) for route in ROUTES}


def evaluate_crosslingual(ds: Dataset, features: dict[str, VideoFeatures], settings: Settings, split: str = "test",
                          languages: Sequence[str] = LANGUAGES, translations: Callable[[str], dict[str, str]] | None = None,
                          progress: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Per language: R@1/R@10 per route and subset on its queries, English on the same queries,
    and `r10_share` = R@10 in that language / English R@10 (all videos), per route."""
    from vidsearch.encoders.bridges import load_bridge
    from vidsearch.encoders.extract import in_text_space
    from vidsearch.encoders.text import load_text_encoder

    cfg = settings.encoders
    text = load_text_encoder(cfg.text_model, cfg.threads, cfg.batch_size)
    backbone = next((f.encoder_versions.get("vision", "") for f in features.values()), "")
    bridge = load_bridge(settings, text, backbone)
    feats = {i: in_text_space(f, text, bridge) for i, f in features.items()}  # a no-op where they are already
    if translations is None:
        translations = tuxpaint_translations()
    _, english = ds.split(split)
    report: dict[str, Any] = {"split": split, "text_model": text.version, "languages": {}}
    for lang in languages:
        progress(f"{split}: {lang}")
        queries = translated_queries(english, translations, lang)
        if not queries:
            report["languages"][lang] = {"queries": 0}
            continue
        kept = {q.query_id for q in queries}
        same_english = [q for q in english if q.query_id in kept]
        got = _route_metrics(ds, split, feats, text, queries)
        ref = _route_metrics(ds, split, feats, text, same_english)
        row: dict[str, Any] = {"queries": len(queries), "of": len(english)}
        for route in ROUTES:
            row[route] = {subset: {"r1": m["r1"], "r10": m["r10"], "english_r1": ref[route][subset]["r1"],
                                   "english_r10": ref[route][subset]["r10"]} for subset, m in got[route].items()}
            en = ref[route]["all"]["r10"]
            row[route]["r10_share"] = round(got[route]["all"]["r10"] / en, 4) if en > 0 else None
        report["languages"][lang] = row
    shares = [row[r]["r10_share"] for row in report["languages"].values() if row.get("queries") for r in ("naive_fusion",)]
    report["target"] = {"r10_share": 0.7, "route": "naive_fusion",
                        "met": bool(shares) and all(s is not None and s >= 0.7 for s in shares)}
    return report


def tuxpaint_translations() -> Callable[[str], dict[str, str]]:
    """video id -> captions by language, from the installed Tux Paint stamps."""
    from vidsearch.ops.datasets.stamps import stamps
    from vidsearch.ops.datasets.tuxpaint import captions_by_language, video_id

    pngs = {video_id(s): s.png for s in stamps()}
    return lambda vid: captions_by_language(pngs[vid]) if vid in pngs else {}
