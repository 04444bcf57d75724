"""Keyframe-caption pairs from a dataset's **train** split, for the bridge head's training.

Only train videos are read: a validation or test video's frames or caption never reach the head
(the same guard as the pretraining corpus's). Each keyframe's pooled features is paired with the
caption of the query its video answers; the group key is the corpus's Tux Paint key for that
caption, so a stamp's icon renders and its video frames are co-relevant, never each other's
negatives.
"""

from __future__ import annotations

import numpy as np

from vidsearch.encoders.features import VideoFeatures
from vidsearch.ops.datasets.format import Dataset
from vidsearch.ops.datasets.pretrain.sources import tux_group

TRAIN = "train"


def train_keyframe_pairs(ds: Dataset, features: dict[str, VideoFeatures]) -> tuple[np.ndarray, list[str], list[str]]:
    """(pooled features (n, d), caption per row, group per row) over train-split keyframes."""
    videos, queries = ds.split(TRAIN)
    caption = {vid: q.text for q in queries for vid in q.relevant}
    rows, texts, groups = [], [], []
    for v in videos:
        f = features.get(v.video_id)
        if v.split != TRAIN or f is None or v.video_id not in caption or not len(f.frame_features):
            continue
        rows.append(f.frame_features)
        texts += [caption[v.video_id]] * len(f.frame_features)
        groups += [tux_group(caption[v.video_id])] * len(f.frame_features)
    dim = next((r.shape[1] for r in rows), 0)
    return (np.concatenate(rows) if rows else np.zeros((0, dim), np.float32)), texts, groups
