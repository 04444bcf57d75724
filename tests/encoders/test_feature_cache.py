"""The dataset feature cache follows the configured encoders: switching the text model re-encodes
the cached records from what they store (no media is decoded), and the vectors are exactly what
the new encoder gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from vidsearch.core.settings import Settings
from vidsearch.ops.datasets.features import cache_path, dataset_features
from vidsearch.ops.datasets.format import load_dataset, write_jsonl

pytestmark = [pytest.mark.models, pytest.mark.timeout(600)]


def test_switching_the_text_model_reencodes_cached_records_without_media(tuxpaint_ci, settings: Settings, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from vidsearch.encoders.extract import FeatureExtractor
    from vidsearch.encoders.text import load_text_encoder

    ds, feats = tuxpaint_ci
    videos = [v for v in ds.videos if v.video_id in feats][:6]
    write_jsonl(tmp_path / "videos.jsonl", videos)
    write_jsonl(tmp_path / "queries.jsonl", [q for q in ds.queries if set(q.relevant) & {v.video_id for v in videos}])
    for v in videos:  # the cached records only: no media in this folder
        target = cache_path(ds, v.video_id).relative_to(ds.root)
        (tmp_path / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(cache_path(ds, v.video_id), tmp_path / target)
    small = load_dataset(tmp_path)

    def no_media(*args, **kwargs):
        raise AssertionError("a text-model switch must not decode media")

    monkeypatch.setattr(FeatureExtractor, "extract", no_media)
    e5_settings = settings.model_copy(update={"encoders": settings.encoders.model_copy(update={"text_model": "e5"})})
    got = dataset_features(small, e5_settings)
    e5 = load_text_encoder("e5")
    assert set(got) == {v.video_id for v in videos}
    for v in videos:
        before, after = feats[v.video_id], got[v.video_id]
        assert after.encoder_versions["text"] == e5.version and after.encoder_versions["vision"] == before.encoder_versions["vision"]
        np.testing.assert_array_equal(after.frame_features, before.frame_features)
        np.testing.assert_allclose(after.text_metadata, e5.encode([before.metadata_text])[0], atol=1e-5)
        assert after.frame_bridge.shape == before.frame_bridge.shape and not np.allclose(after.frame_bridge, before.frame_bridge)
    # the re-encoded records were written back: a second call re-encodes nothing and agrees
    again = dataset_features(small, e5_settings)
    for v in videos:
        np.testing.assert_array_equal(again[v.video_id].text_metadata, got[v.video_id].text_metadata)
