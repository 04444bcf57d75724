"""Backbone choice in settings and where it shows: the feature cache folder per backbone, and a
copy whitening fitted on one backbone accepted only under that backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidsearch.core.errors import ConfigError
from vidsearch.core.settings import load_settings
from vidsearch.encoders.fingerprint import Fingerprinter, FingerprintModelError, configured_fingerprinter
from vidsearch.ops.datasets.features import cache_path
from vidsearch.ops.datasets.format import Dataset

pytestmark = pytest.mark.unit


def test_an_unknown_backbone_is_a_config_error() -> None:
    assert load_settings().encoders.vision_model == "efficientnet-lite0"
    assert load_settings(encoders={"vision_model": "efficientnet-lite2"}).encoders.vision_model == "efficientnet-lite2"
    with pytest.raises(ConfigError):
        load_settings(encoders={"vision_model": "resnet50"})


def test_each_backbone_caches_features_in_its_own_folder(tmp_path: Path) -> None:
    ds = Dataset(tmp_path, [], [])
    assert cache_path(ds, "v1") == tmp_path / "features" / "v1.npz"
    assert cache_path(ds, "v1", "efficientnet-lite0") == cache_path(ds, "v1")
    assert cache_path(ds, "v1", "efficientnet-lite2") == tmp_path / "features-efficientnet-lite2" / "v1.npz"


def test_a_whitening_is_accepted_only_under_the_backbone_it_was_fitted_on(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    fp = Fingerprinter(rng.normal(size=8).astype(np.float32), rng.normal(size=(8, 4)).astype(np.float32),
                       {"backbone": "efficientnet-lite2"})
    fp.save(tmp_path / "w.npz")
    lite2 = load_settings(encoders={"vision_model": "efficientnet-lite2"}, copies={"whitening": tmp_path / "w.npz"})
    assert configured_fingerprinter(lite2).backbone == "efficientnet-lite2"
    lite0 = load_settings(copies={"whitening": tmp_path / "w.npz"})
    with pytest.raises(FingerprintModelError, match="fitted on efficientnet-lite2"):
        configured_fingerprinter(lite0)
    legacy = Fingerprinter(fp.mean, fp.projection, {})  # files from before the card named the backbone
    legacy.save(tmp_path / "old.npz")
    assert configured_fingerprinter(load_settings(copies={"whitening": tmp_path / "old.npz"})).backbone == "efficientnet-lite0"
