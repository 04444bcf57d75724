"""Base features of a dataset's videos, extracted once and cached next to the media.

Training and evaluation only ever need `VideoFeatures` (the expensive part: decode, ASR, OCR,
backbones); the cache makes a second `train`/`eval` start in seconds. A video whose media cannot
be decoded is reported and left out (never silently given zero features).
"""

from __future__ import annotations

import logging
import os
import tempfile
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


MEDIA_ENCODERS = ("vision", "asr", "ocr")  # a change here needs the media again
TEXT_ENCODERS = ("text", "bridge")  # a change here is re-encoded from the stored record


def staleness(have: dict[str, str], want: dict[str, str]) -> str:
    """"fresh", "text" (only the text encoder or the bridge changed: re-encode from the record)
    or "media" (a media encoder changed or was added: extract again). A record from before
    versions were stored counts as media-stale."""
    if not have or any(have.get(k) != want[k] for k in MEDIA_ENCODERS if k in want):
        return "media"
    return "text" if any(have.get(k) != want[k] for k in TEXT_ENCODERS if k in want) else "fresh"


def dataset_features(ds: Dataset, settings: Settings, videos: list[VideoRecord] | None = None,
                     progress: Progress | None = None, refresh: bool = False) -> dict[str, VideoFeatures]:
    """Features for `videos` (default: all) from the configured encoders. A cached record made by
    other encoder versions is not reused as it is: a changed text encoder or bridge is re-encoded
    from the record, and a changed vision, ASR or OCR encoder extracts the video again (the
    encoders are loaded for their versions, a few seconds)."""
    from vidsearch.encoders.extract import FeatureExtractor

    videos = ds.videos if videos is None else videos
    extractor = FeatureExtractor.load(settings)
    want = extractor.versions()
    out: dict[str, VideoFeatures] = {}
    missing: list[VideoRecord] = []
    reencoded = 0
    for v in videos:
        path = cache_path(ds, v.video_id, settings.encoders.vision_model)
        if path.exists() and not refresh:
            try:
                feats = VideoFeatures.load(path)
            except FeatureFormatError as exc:
                log.warning("re-extracting %s: %s", v.video_id, exc)
            else:
                state = staleness(feats.encoder_versions, want)
                if feats.title == v.title and feats.description == v.description and state != "media":
                    if state == "text":
                        feats = extractor.reencode_text(feats)
                        _save(feats, path)
                        reencoded += 1
                    out[v.video_id] = feats
                    continue
        missing.append(v)
    if reencoded:
        log.info("%s: %s cached records re-encoded for text %s", ds.root, reencoded, want["text"])
    if missing:
        items = progress(missing, len(missing)) if progress else missing
        for v in items:
            media = ds.media_path(v)
            try:
                feats = extractor.extract(media, video_id=v.video_id, title=v.title, description=v.description)
            except VidsearchError as exc:
                log.error("cannot extract %s (%s): %s", v.video_id, media, exc)
                continue
            _save(feats, cache_path(ds, v.video_id, settings.encoders.vision_model))
            out[v.video_id] = feats
    if not out:
        raise DatasetError(f"{ds.root}: no video could be decoded")
    return out


def _save(feats: VideoFeatures, path: Path) -> None:
    """Write through a temporary file of this writer's own: two processes extracting the same
    dataset (an eval beside a training run) used to share one `<id>.part` name, and one could
    rename the other's half-written file into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(feats.to_bytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
