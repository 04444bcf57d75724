"""Turn validated upserts into base features: decode precomputed ones, or extract from media.

Text vectors of the metadata are (re)computed from the event for the whole batch at once (the
event, not the features, is the source of truth for title/description/tags); the heavy media
extractor is loaded only when a media event arrives.
"""

from __future__ import annotations

import numpy as np

from vidsearch.connector.errors import InvalidEventError
from vidsearch.connector.events import VideoUpsert
from vidsearch.connector.media_policy import local_media
from vidsearch.core.settings import Settings
from vidsearch.encoders.features import ARRAYS, FeatureLimits, VideoFeatures
from vidsearch.encoders.text import TextEncoder

# name -> (number of dimensions, size of the last one)
SHAPES = {
    "frame_bridge": (2, 384),
    "frame_features": (2, 1280),
    "keyframe_times": (1, None),
    "text_metadata": (1, 384),
    "text_transcript": (1, 384),
    "text_ocr": (1, 384),
    "audio_vector": (1, 384),
    "frame_top_classes": (2, None),
    "frame_top_probs": (2, None),
}
PER_FRAME = ("frame_bridge", "frame_features", "frame_top_classes", "frame_top_probs")


def feature_limits(settings: Settings) -> FeatureLimits:
    """What a precomputed features record may make the reader allocate (`indexer.limits`)."""
    lim = settings.indexer.limits
    return FeatureLimits(max_bytes=lim.features_max_bytes, max_array_bytes=lim.features_max_array_bytes,
                         max_meta_bytes=lim.features_max_meta_bytes, max_keyframes=lim.features_max_keyframes)


def check_features(feats: VideoFeatures) -> None:
    """Reject non-finite values and wrong shapes before they reach an index."""
    for name in ARRAYS:
        arr = getattr(feats, name)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise InvalidEventError(f"features.{name} contains NaN or infinite values", stage="features")
    for name, (ndim, last) in SHAPES.items():
        arr = getattr(feats, name)
        if arr.ndim != ndim or (last is not None and arr.shape[-1] != last):
            want = f"{ndim}-d" + (f" ending in {last}" if last else "")
            raise InvalidEventError(f"features.{name} has shape {arr.shape}, expected {want}", stage="features")
    for name in PER_FRAME:
        if len(getattr(feats, name)) != len(feats.keyframe_times):
            raise InvalidEventError(f"features: keyframe_times and {name} differ in length", stage="features")


class EventEncoder:
    def __init__(self, settings: Settings, text: TextEncoder) -> None:
        self.settings = settings
        self.text = text
        self._extractor = None

    def _media_extractor(self):  # -> FeatureExtractor
        if self._extractor is None:
            from vidsearch.encoders.extract import FeatureExtractor

            self._extractor = FeatureExtractor.load(self.settings)
        return self._extractor

    def base_features(self, event: VideoUpsert) -> VideoFeatures:
        """Precomputed features win over media (no decode needed); raises typed errors."""
        raw = event.features_bytes()
        if raw is not None:
            # FeatureFormatError/FeatureLimitError are data errors: they reach the DLQ under their own class
            feats = VideoFeatures.from_bytes(raw, feature_limits(self.settings))
            feats.video_id = event.video_id
            check_features(feats)
            return feats
        assert event.media_uri is not None
        with local_media(event.media_uri, self.settings.indexer.media_policy) as path:
            # MediaError and its subclasses are data errors: dead-lettered under their own class
            return self._media_extractor().extract(path, video_id=event.video_id)

    def apply_metadata(self, pairs: list[tuple[VideoUpsert, VideoFeatures]]) -> None:
        """One batched text-encoder call for the whole batch's metadata."""
        for event, feats in pairs:
            feats.title, feats.description, feats.tags = event.title, event.description, list(event.tags)
        if pairs:
            vectors = self.text.encode([feats.metadata_text for _, feats in pairs])
            for (_, feats), vec in zip(pairs, vectors):
                feats.text_metadata = vec
