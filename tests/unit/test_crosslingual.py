"""Cross-lingual evaluation's pure parts: which translation a query gets (and which queries are
left out), records re-encoded into another text space, and the Tux Paint caption parser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidsearch.encoders.extract import in_text_space
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.vision import TextBridge
from vidsearch.ops.datasets.format import QueryRecord
from vidsearch.ops.datasets.tuxpaint import captions_by_language
from vidsearch.ops.modeling.crosslingual import translated_queries

pytestmark = pytest.mark.unit


def test_captions_by_language_reads_the_lines_after_the_english_one(tmp_path: Path) -> None:
    png = tmp_path / "frog.png"
    png.with_suffix(".txt").write_text("A frog.\nde.utf8=Ein Frosch.\nzh_CN.utf8=青蛙。\nbroken line\nfr.utf8=  \n"
                                       "ca@valencia.utf8=Una granota.\nx=y.utf8=no\n", encoding="utf-8")
    assert captions_by_language(png) == {"de": "Ein Frosch.", "zh_CN": "青蛙。", "ca@valencia": "Una granota."}


def test_a_query_takes_the_first_relevant_translation_and_untranslated_ones_are_left_out() -> None:
    table = {"v1": {"de": "Ein Frosch."}, "v2": {"de": "Frosch", "fr": "Une grenouille."}, "v3": {}}
    queries = [QueryRecord(query_id="q1", text="A frog.", relevant=["v3", "v1", "v2"]),
               QueryRecord(query_id="q2", text="A tree.", relevant=["v3"])]
    de = translated_queries(queries, lambda vid: table.get(vid, {}), "de")
    assert [(q.query_id, q.text, q.relevant) for q in de] == [("q1", "Ein Frosch.", ["v3", "v1", "v2"])]
    assert [q.text for q in translated_queries(queries, lambda vid: table.get(vid, {}), "fr")] == ["Une grenouille."]
    assert translated_queries(queries, lambda vid: table.get(vid, {}), "ja") == []
    assert queries[0].text == "A frog."  # the English queries are not changed


class _Letters:
    """A fake encoder: a text's vector counts its letters a-d (enough to tell texts apart)."""

    version = "letters"

    def encode(self, texts, kind="passage"):
        return np.array([[t.count(c) for c in "abcd"] for t in texts], np.float32)


def test_features_are_reencoded_and_the_bridge_follows_the_stored_top_classes() -> None:
    f = VideoFeatures(video_id="v", title="abba", description="", frame_top_classes=np.array([[1, 0], [2, 2]], np.int16),
                      frame_top_probs=np.array([[0.5, 0.5], [1.0, 0.0]], np.float32),
                      encoder_versions={"text": "minilm@1", "bridge": "bridge@minilm@1/k2", "vision": "lite0@1"})
    bridge = object.__new__(TextBridge)  # the class-name vectors by hand, not from ImageNet names
    bridge.class_vectors = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 3]], np.float32)
    bridge.version = "bridge@letters/k2"
    out = in_text_space(f, _Letters(), bridge)
    np.testing.assert_allclose(out.text_metadata, [2, 2, 0, 0])
    np.testing.assert_allclose(out.text_transcript, [0, 0, 0, 0])
    np.testing.assert_allclose(out.frame_bridge, [[2**-0.5, 2**-0.5, 0, 0], [0, 0, 0, 1]], rtol=1e-6)
    assert out.encoder_versions == {"text": "letters", "bridge": "bridge@letters/k2", "vision": "lite0@1"}
    assert f.frame_bridge.shape == (0, 384) and f.encoder_versions["text"] == "minilm@1"  # the input is not changed
    assert in_text_space(out, _Letters(), bridge) is out  # already in that space: nothing to do
