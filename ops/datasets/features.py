"""Base features of a dataset's videos, extracted once and cached next to the media.

Training and evaluation only ever need `VideoFeatures` (the expensive part: decode, ASR, OCR,
backbones); the cache makes a second `train`/`eval` start in seconds. A video whose media cannot
be decoded is reported and left out (never silently given zero features).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from vidsearch.core.errors import VidsearchError
from vidsearch.core.settings import Settings
from vidsearch.encoders.features import FeatureFormatError, VideoFeatures
from vidsearch.ops.datasets.format import Dataset, DatasetError, VideoRecord

log = logging.getLogger(__name__)

Progress = Callable[[Iterable[VideoRecord], int], Iterable[VideoRecord]]


def cache_path(ds: Dataset, video_id: str, vision_model: str = "efficientnet-lite0") -> Path:
    """Each backbone has its own cache folder (the default keeps the plain `features/`), so
    switching `encoders.vision_model` neither reuses another backbone's vectors nor overwrites them."""
    folder = "features" if vision_model == "efficientnet-lite0" else f"features-{vision_model}"
    return ds.root / folder / f"{video_id}.npz"


def dataset_features(ds: Dataset, settings: Settings, videos: list[VideoRecord] | None = None,
                     progress: Progress | None = None, refresh: bool = False) -> dict[str, VideoFeatures]:
    """Features for `videos` (default: all), extracting only what the cache lacks."""
    videos = ds.videos if videos is None else videos
    out: dict[str, VideoFeatures] = {}
    missing: list[VideoRecord] = []
    for v in videos:
        path = cache_path(ds, v.video_id, settings.encoders.vision_model)
        if path.exists() and not refresh:
            try:
                feats = VideoFeatures.load(path)
            except FeatureFormatError as exc:
                log.warning("re-extracting %s: %s", v.video_id, exc)
            else:
                if feats.title == v.title and feats.description == v.description:
                    out[v.video_id] = feats
                    continue
        missing.append(v)
    if missing:
        from vidsearch.encoders.extract import FeatureExtractor

        extractor = FeatureExtractor.load(settings)
        items = progress(missing, len(missing)) if progress else missing
        for v in items:
            media = ds.media_path(v)
            try:
                feats = extractor.extract(media, video_id=v.video_id, title=v.title, description=v.description)
            except VidsearchError as exc:
                log.error("cannot extract %s (%s): %s", v.video_id, media, exc)
                continue
            path = cache_path(ds, v.video_id, settings.encoders.vision_model)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            feats.save(tmp)
            tmp.replace(path)
            out[v.video_id] = feats
    if not out:
        raise DatasetError(f"{ds.root}: no video could be decoded")
    return out
