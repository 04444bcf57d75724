"""`vidsearch eval --crosslingual` on the CI Tux Paint set with the real encoders: German queries
keep more of English R@10 with multilingual E5 than with English-only MiniLM, and every language
is compared with English on exactly its own queries."""

from __future__ import annotations

import pytest

from vidsearch.core.settings import Settings
from vidsearch.ops.modeling.crosslingual import evaluate_crosslingual

pytestmark = [pytest.mark.models, pytest.mark.slow]


def test_e5_keeps_more_of_english_recall_across_languages_than_minilm(tuxpaint_ci, settings: Settings) -> None:
    ds, feats = tuxpaint_ci
    test_feats = {v.video_id: feats[v.video_id] for v in ds.videos if v.split == "test" and v.video_id in feats}
    e5 = evaluate_crosslingual(ds, test_feats, settings.model_copy(update={"encoders": settings.encoders.model_copy(update={"text_model": "e5"})}),
                               "test", ["de", "zh_CN"])
    minilm = evaluate_crosslingual(ds, test_feats, settings, "test", ["de"])
    assert e5["text_model"].startswith("e5@") and minilm["text_model"].startswith("minilm@")
    de, de_minilm = e5["languages"]["de"], minilm["languages"]["de"]
    assert 0 < de["queries"] <= de["of"] and de["queries"] == de_minilm["queries"]
    # English on the same queries is one figure, whichever language it is compared with
    english = de["naive_fusion"]["all"]["english_r10"]
    assert english > 0
    if e5["languages"]["zh_CN"]["queries"] == de["queries"]:
        assert e5["languages"]["zh_CN"]["naive_fusion"]["all"]["english_r10"] == english
    assert de["naive_fusion"]["r10_share"] > de_minilm["naive_fusion"]["r10_share"]
    assert de["naive_fusion"]["r10_share"] == pytest.approx(de["naive_fusion"]["all"]["r10"] / english, abs=1e-3)
