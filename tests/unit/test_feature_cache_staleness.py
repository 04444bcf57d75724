"""When a cached feature record may be reused: as it is, re-encoded for text, or extracted again."""

from __future__ import annotations

import pytest

from vidsearch.ops.datasets.features import staleness

pytestmark = pytest.mark.unit

WANT = {"text": "minilm@1", "vision": "efficientnet-lite0@1", "bridge": "bridge@minilm@1/k5", "asr": "whisper@1", "ocr": "ocr@gate"}


def test_same_versions_are_fresh() -> None:
    assert staleness(dict(WANT), WANT) == "fresh"


def test_a_new_text_encoder_or_bridge_is_reencoded_from_the_record() -> None:
    assert staleness(WANT | {"text": "e5@1", "bridge": "bridge@e5@1/k5"}, WANT) == "text"
    assert staleness(WANT | {"bridge": "bridge@minilm@1/k3"}, WANT) == "text"


@pytest.mark.parametrize("key", ["vision", "asr", "ocr"])
def test_a_changed_media_encoder_needs_the_media(key: str) -> None:
    assert staleness(WANT | {key: "other@2"}, WANT) == "media"
    assert staleness(WANT | {key: "other@2", "text": "e5@1"}, WANT) == "media"


def test_missing_versions_and_switched_off_encoders() -> None:
    assert staleness({}, WANT) == "media"  # a record from before versions were stored
    assert staleness({k: v for k, v in WANT.items() if k != "ocr"}, WANT) == "media"  # OCR was off, now on
    no_asr = {k: v for k, v in WANT.items() if k != "asr"}
    assert staleness(dict(WANT), no_asr) == "fresh"  # ASR now off: the record holds more than asked, not less
