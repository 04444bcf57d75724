"""A dataset split as the towers see it: feature arrays, one query per caption, relevance indices."""

from __future__ import annotations

import numpy as np

from vidsearch.encoders.balanced.inputs import video_arrays
from vidsearch.encoders.balanced.train import Split
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.text import TextEncoder
from vidsearch.ops.datasets.format import Dataset, DatasetError


def make_split(ds: Dataset, name: str, features: dict[str, VideoFeatures], text: TextEncoder) -> tuple[Split, list[str]]:
    """(Split, video ids in order). Videos whose features could not be extracted are left out."""
    videos, queries = ds.split(name)
    videos = [v for v in videos if v.video_id in features]
    index = {v.video_id: i for i, v in enumerate(videos)}
    queries = [q for q in queries if any(r in index for r in q.relevant)]
    if not videos or not queries:
        raise DatasetError(f"{ds.root}: split {name!r} has no video with features")
    relevant = [[index[r] for r in q.relevant if r in index] for q in queries]
    video_query = np.zeros(len(videos), np.int64)
    for qi, rel in enumerate(relevant):
        video_query[rel] = qi
    split = Split(
        arrays=video_arrays([features[v.video_id] for v in videos]),
        query_vecs=text.encode([q.text for q in queries], kind="query").astype(np.float32),
        relevant=relevant,
        subsets=[v.subset for v in videos],
        video_query=video_query,
    )
    return split, [v.video_id for v in videos]
