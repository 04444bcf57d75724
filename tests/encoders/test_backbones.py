"""The stronger backbone option: EfficientNet-Lite2 from its package, at its own input size and
version id, served the same by torch and onnxruntime; the packaged copy whitening (fitted on
Lite0) is refused at start-up under it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidsearch.core.settings import Settings
from vidsearch.encoders.media.decode import keyframes

pytestmark = [pytest.mark.models, pytest.mark.timeout(600)]


def _with_vision(settings: Settings, name: str, cache: Path | None = None) -> Settings:
    update: dict = {"encoders": settings.encoders.model_copy(update={"vision_model": name})}
    if cache is not None:
        update["stack"] = settings.stack.model_copy(update={"cache_dir": cache})
    return settings.model_copy(update=update)


def test_lite2_has_its_own_size_and_version_and_onnx_matches_torch(clips, settings: Settings, tmp_path: Path) -> None:
    from vidsearch.encoders.onnx.serve import load_onnx_encoders
    from vidsearch.encoders.serving import load_vision_encoder

    frames = [k.rgb for c in clips[:3] for k in keyframes(c.path, settings.media)][:8]
    lite0 = load_vision_encoder(settings)
    lite2_settings = _with_vision(settings, "efficientnet-lite2", tmp_path)
    lite2 = load_vision_encoder(lite2_settings)
    assert (lite0.name, lite0.input_size) == ("efficientnet-lite0", 224)
    assert (lite2.name, lite2.input_size) == ("efficientnet-lite2", 260)
    assert lite2.version.startswith("efficientnet-lite2@") and lite2.version != lite0.version
    a, b = lite0.encode(frames), lite2.encode(frames)
    assert b.features.shape == a.features.shape == (len(frames), 1280)
    np.testing.assert_allclose(np.linalg.norm(b.features, axis=1), 1.0, atol=1e-4)
    assert not np.allclose(a.features, b.features, atol=1e-2)  # another network, not a renamed one

    _, ort = load_onnx_encoders(lite2_settings)
    assert ort.version == lite2.version and ort.input_size == 260
    served = ort.encode(frames)
    assert (served.features * b.features).sum(1).min() >= 0.999
    assert (served.logits.argmax(1) == b.logits.argmax(1)).all()
    assert (tmp_path / "onnx" / lite2.version.replace("@", "-") / "vision.onnx").exists()


def test_packaged_copy_whitening_is_refused_under_another_backbone(settings: Settings) -> None:
    from vidsearch.encoders.fingerprint import FingerprintModelError, configured_fingerprinter

    assert configured_fingerprinter(settings).backbone == "efficientnet-lite0"
    with pytest.raises(FingerprintModelError, match="train-fingerprint"):
        configured_fingerprinter(_with_vision(settings, "efficientnet-lite2"))
