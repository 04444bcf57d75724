"""The learned fusion gate, its training, the cut of the weak tail, and the retriever's grouping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from vidsearch.core.errors import ConfigError
from vidsearch.core.settings import Settings
from vidsearch.plugins.retrieval.adaptive import (
    FEATURES,
    FUSION_FILE,
    AdaptiveFusion,
    FusionModelError,
    candidates,
    doc_features,
    query_features,
    route_features,
)
from vidsearch.plugins.retrieval.build import load_fusion_model
from vidsearch.plugins.retrieval.cut import autocut, cliffs
from vidsearch.plugins.retrieval.fusion import FusionContext, convex, decisiveness_weights, fuse
from vidsearch.plugins.retrieval.request import SearchRequest

pytestmark = pytest.mark.unit
F = {name: i for i, name in enumerate(FEATURES)}


def gate(**coefs: dict[str, float]) -> AdaptiveFusion:
    """A hand-set gate: coefs per route, by feature name."""
    routes = ("bm25", "knn")
    coef = np.zeros((2, len(FEATURES)))
    for j, r in enumerate(routes):
        for name, v in coefs.get(r, {}).items():
            coef[j, F[name]] = v
    return AdaptiveFusion(routes, coef, np.zeros(2))


def test_route_features_measure_the_head() -> None:
    f = route_features({"a": 10.0, "b": 2.0, "c": 1.0, "d": 0.0}, depth=8)
    assert f[F["decisiveness"]] == pytest.approx(0.8)  # (10-2)/(10-0)
    assert f[F["top_gap"]] == pytest.approx(0.8, rel=1e-6)  # (10-2)/10
    assert f[F["present"]] == 1.0 and f[F["fill"]] == pytest.approx(0.5)
    assert not route_features({}, depth=8).any()
    flat = route_features({"a": 1.0, "b": 1.0}, depth=2)
    assert flat[F["decisiveness"]] == 0.0 and np.isfinite(flat).all()


def test_query_features_overlap_length_and_matched_terms() -> None:
    routes = {"bm25": {"x": 3.0, "y": 1.0}, "knn": {"x": 0.9, "z": 0.5}}
    docs = {"x": {"title": "A red Frog", "tags": ["pond"]}, "y": {"title": "tree"}}
    overlap, qlen, matched = query_features(routes, "the frog in a pond, jumping", docs)
    assert overlap == pytest.approx(1 / 10)  # one shared id among top-10 lists
    assert matched == pytest.approx(2 / 3)  # frog, pond of (frog, pond, jumping); stop words ignored
    assert qlen > 0
    assert query_features({"bm25": {}, "knn": {"x": 1.0}}, "frog", {})[2] == 0.0


def test_doc_features_know_when_lengths_are_missing() -> None:
    assert doc_features(None).tolist() == [0, 0, 0, 0, 0]
    f = doc_features([10, 0, 1000, 0])
    assert f[-1] == 1.0 and f[0] > 0 and f[1] == 0 and f[2] > f[0]
    assert doc_features([1, 2]).tolist() == [0, 0, 0, 0, 0]  # malformed stored value: unknown, not an error


def test_an_untrained_gate_is_the_equal_weight_convex_fusion() -> None:
    routes = {"bm25": {"x": 10.0, "y": 5.0, "z": 0.0}, "knn": {"y": 0.9, "w": 0.5}}
    model = AdaptiveFusion(("bm25", "knn"), np.zeros((2, len(FEATURES))), np.zeros(2))
    fused, weights = model.fuse(routes, "q", {}, 100)
    expected = convex(routes, {"bm25": 0.5, "knn": 0.5})
    assert fused == pytest.approx(expected) and weights == pytest.approx({"bm25": 0.5, "knn": 0.5})


def test_the_gate_weighs_each_document_by_how_much_text_it_carries() -> None:
    # BM25 counts more for documents with a title; a text-less document's dense score decides.
    model = gate(bm25={"len_title": 8.0})
    routes = {"bm25": {"titled": 5.0, "bare": 0.0}, "knn": {"bare": 0.9, "titled": 0.1}}
    docs = {"titled": {"text_lengths": [400, 0, 0, 0]}, "bare": {"text_lengths": [0, 0, 0, 0]}}
    c = candidates(routes, "q", docs, 100, ["bm25", "knn"])
    w = model.gate(c)
    i_t, i_b = c.ids.index("titled"), c.ids.index("bare")
    assert w[i_t, 0] > 0.9 and w[i_b, 0] == pytest.approx(0.5)
    fused, _ = model.fuse(routes, "q", docs, 100)
    assert fused["titled"] > 0.9 and fused["bare"] == pytest.approx(0.5)


def test_dynamic_margin_uses_the_gate_only_for_routes_it_was_trained_on() -> None:
    model = gate(knn={"present": 10.0})  # all weight on knn
    routes = {"bm25": {"a": 2.0, "b": 1.0}, "knn": {"b": 0.9, "a": 0.1}}
    fused, w = fuse("dynamic_margin", routes, context=FusionContext("q", {}, 100, model))
    assert max(fused, key=fused.get) == "b" and w["knn"] > 0.99
    other = {"bm25": routes["bm25"], "knn_visual": routes["knn"]}
    _, w2 = fuse("dynamic_margin", other, context=FusionContext("q", {}, 100, model))
    assert w2 == pytest.approx(decisiveness_weights(other))
    # explicit request weights act as a prior on the decisiveness weights
    _, w3 = fuse("dynamic_margin", routes, {"bm25": 0.0, "knn": 1.0}, context=FusionContext("q", {}, 100, model))
    assert w3 == {"bm25": 0.0, "knn": 1.0}


def test_model_files_round_trip_and_refuse_what_they_cannot_serve(tmp_path: Path) -> None:
    model = gate(bm25={"decisiveness": 1.5})
    path = model.save(tmp_path / FUSION_FILE)
    back = AdaptiveFusion.load(path)
    assert back.version == model.version and np.allclose(back.coef, model.coef)
    assert gate(bm25={"decisiveness": 1.0}).version != model.version
    body = json.loads(path.read_text())
    for change, message in [({"format": "other/1"}, "format"), ({"features": ["x"]}, "features"),
                            ({"coef": [[1.0]]}, "shapes"), ({"bias": [float("nan"), 0.0]}, "non-finite")]:
        (tmp_path / "bad.json").write_text(json.dumps({**body, **change}))
        with pytest.raises(FusionModelError, match=message):
            AdaptiveFusion.load(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(FusionModelError, match="unreadable"):
        AdaptiveFusion.load(tmp_path / "junk.json")


def test_the_packaged_gate_is_trained_and_documented() -> None:
    model = AdaptiveFusion.load()
    assert model.covers(["bm25", "knn"]) and np.abs(model.coef).sum() > 0
    assert "validation" in model.card["selection"] and model.card["train_queries"] > 0


def test_load_fusion_model_prefers_config_then_the_model_folder(tmp_path: Path) -> None:
    beside = gate(knn={"overlap": 1.0}).save(tmp_path / "model" / FUSION_FILE)
    assert load_fusion_model(Settings(), tmp_path / "model").version == AdaptiveFusion.load(beside).version
    assert load_fusion_model(Settings()).version == AdaptiveFusion.load().version
    (tmp_path / "broken.json").write_text("nope")
    with pytest.raises(ConfigError):
        load_fusion_model(Settings.model_validate({"retrieval": {"fusion_model": str(tmp_path / "broken.json")}}))


def _synthetic(rng: np.random.Generator, n: int) -> list[Any]:
    """Queries whose answer BM25 ranks first when the query's words were matched in the top
    titles, and the dense route ranks first otherwise: what the gate must learn."""
    from vidsearch.ops.modeling.fusion_training import Example

    out = []
    for i in range(n):
        lexical = bool(i % 2)
        ids = [f"d{j}" for j in range(12)]
        bm = {d: float(rng.uniform(0, 5)) for d in ids}
        kn = {d: float(rng.uniform(0.2, 0.6)) for d in ids}
        target = ids[int(rng.integers(12))]
        if lexical:
            bm[target] = 9.0
            kn[target] = 0.25
        else:
            kn[target] = 0.8
            bm[target] = 0.5
        docs = {d: {"title": "frog" if (lexical and d == target) else "x"} for d in ids}
        c = candidates({"bm25": bm, "knn": kn}, "frog", docs, 12, ["bm25", "knn"])
        out.append(Example(c, np.array([d == target for d in c.ids])))
    return out


def test_training_learns_a_gate_that_beats_equal_weights_on_held_out_queries() -> None:
    from vidsearch.ops.modeling.fusion_training import fit, ranks, rsum

    rng = np.random.default_rng(0)
    train, held_out = _synthetic(rng, 60), _synthetic(rng, 40)
    learned = fit(train, temperature=0.05, penalty=1e-3)
    equal = AdaptiveFusion(("bm25", "knn"), np.zeros((2, len(FEATURES))), np.zeros(2))
    r_learned, r_equal = rsum(ranks(learned, held_out)), rsum(ranks(equal, held_out))
    assert r_learned > r_equal + 20, (r_learned, r_equal)
    assert ranks(learned, held_out).count(1) >= 36  # 90% of held-out answers at rank 1


def test_rsum_counts_unretrieved_queries_as_misses() -> None:
    from vidsearch.ops.modeling.fusion_training import rsum

    assert rsum([1, 6, None, 11]) == pytest.approx(25 + 25 + 50)


def test_autocut_keeps_what_comes_before_the_cliff() -> None:
    scores = [0.95, 0.93, 0.92, 0.40, 0.39, 0.38, 0.37, 0.10]
    assert cliffs(scores) == [3, 7]
    assert autocut(scores, 1) == 3 and autocut(scores, 2) == 7 and autocut(scores, 3) == len(scores)
    smooth = list(np.linspace(1.0, 0.0, 20))
    assert autocut(smooth, 1) == 20
    assert autocut([], 1) == 0 and autocut([0.5, 0.5, 0.5], 1) == 3


def test_request_bounds_the_new_fields() -> None:
    assert SearchRequest(q="frog", fusion="opensearch_hybrid").fusion == "opensearch_hybrid"
    for bad in ({"moments_per_video": 0}, {"moments_per_video": 11}, {"min_score": float("nan")}, {"autocut": 0},
                {"group_by": "channel"}):
        with pytest.raises(ValidationError):
            SearchRequest(q="frog", **bad)


class _Encoder:
    version = "t"

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        v = np.ones(4, np.float32) / 2
        return v, v

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return np.zeros((len(texts), 4), np.float32)


class _Store:
    name = "fake"

    def __init__(self) -> None:
        self.lex = {"a": 9.0, "b": 8.9, "c": 8.8, "d": 1.0, "e": 0.9}
        self.dense = {"a": 0.9, "b": 0.88, "c": 0.87, "d": 0.1, "e": 0.05}

    def bm25(self, q: str, filters: Any, depth: int) -> dict[str, float]:
        return self.lex

    def knn(self, field: str, vec: np.ndarray, filters: Any, depth: int) -> dict[str, float]:
        return self.dense

    def fetch(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        # two shots per video: the keyframe in the second matches the query best
        kf = [{"t": 1.0, "vector": [0, 0, 0, 1.0], "shot": [0.0, 2.0]}, {"t": 3.0, "vector": [0.5] * 4, "shot": [2.0, 4.0]}]
        return {i: {"keyframes": kf, "segments": [], "duration": 4.0} for i in ids}


def test_retriever_cuts_the_tail_and_groups_moments() -> None:
    from vidsearch.plugins.retrieval.retriever import Retriever

    r = Retriever(_Encoder(), {"lexical": _Store(), "dense": _Store()}, fusion_model=AdaptiveFusion.load())
    full = r.search(SearchRequest(q="frog", k=10, moments=False))
    assert [h.video_id for h in full.hits] == ["a", "b", "c", "d", "e"] and full.fusion_version
    cut = r.search(SearchRequest(q="frog", k=10, moments=False, autocut=1))
    assert [h.video_id for h in cut.hits] == ["a", "b", "c"]
    floor = r.search(SearchRequest(q="frog", k=10, moments=False, min_score=full.hits[2].score - 1e-5))  # scores are rounded to 6 places
    assert [h.video_id for h in floor.hits] == ["a", "b", "c"]
    grouped = r.search(SearchRequest(q="frog", k=2, moments_per_video=2))
    assert len(grouped.hits) == 2 and all(1 <= len(h.moments) <= 2 for h in grouped.hits)
    assert grouped.hits[0].moment == grouped.hits[0].moments[0]
    per_moment = r.search(SearchRequest(q="frog", k=2, moments_per_video=2, group_by="moment"))
    assert len(per_moment.hits) == sum(len(h.moments) for h in grouped.hits)
    assert [h.video_id for h in per_moment.hits] == sorted(h.video_id for h in per_moment.hits)
