"""The dataset feature cache writes each record through a temporary file of its own writer, so
processes extracting the same dataset at once never rename each other's half-written files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidsearch.encoders.features import VideoFeatures
from vidsearch.ops.datasets import features as cache


def _feats(title: str) -> VideoFeatures:
    return VideoFeatures(video_id="v1", title=title, text_metadata=np.full(4, len(title), np.float32))


def test_each_writer_has_its_own_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "v1.feat"
    temps: list[str] = []
    real_replace = cache.os.replace

    def spy(src: str, dst: Path) -> None:
        temps.append(Path(src).name)
        if len(temps) == 1:  # a second writer finishes while the first is between write and rename
            cache._save(_feats("second"), target)
        real_replace(src, dst)

    monkeypatch.setattr(cache.os, "replace", spy)
    cache._save(_feats("first"), target)
    assert len(set(temps)) == 2, temps
    assert VideoFeatures.load(target).title == "first"  # the last rename wins, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1.feat"]  # no temporary file left


def test_a_failed_write_leaves_neither_a_record_nor_a_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: VideoFeatures) -> bytes:
        raise OSError("disk full")

    monkeypatch.setattr(VideoFeatures, "to_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        cache._save(_feats("first"), tmp_path / "v1.feat")
    assert list(tmp_path.iterdir()) == []
