"""Pure parts of the retriever: fusion, request validation, filters, moments, the query log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from vidsearch.core.filters import Filters
from vidsearch.ops.api.app import parse_query_params
from vidsearch.plugins.milvus.filters import to_expr as milvus_filter
from vidsearch.plugins.opensearch.filters import clauses as opensearch_filter
from vidsearch.plugins.retrieval.fusion import convex, decisiveness, decisiveness_weights, dynamic_margin, fuse, rrf
from vidsearch.plugins.retrieval.moments import best_moment, keyframe_windows, smooth
from vidsearch.plugins.retrieval.query_log import QueryLog
from vidsearch.plugins.retrieval.request import SearchRequest

pytestmark = pytest.mark.unit


def test_rrf_is_the_sum_of_reciprocal_ranks_over_the_union() -> None:
    fused = rrf({"a": {"x": 9.0, "y": 5.0}, "b": {"y": 0.9, "z": 0.1}}, k=60)
    assert fused["y"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["x"] == pytest.approx(1 / 61) and fused["z"] == pytest.approx(1 / 62)


def test_convex_minmax_and_zscore() -> None:
    routes = {"bm25": {"x": 10.0, "y": 5.0, "z": 0.0}, "knn": {"y": 0.9, "w": 0.5}}
    mm = convex(routes, {"bm25": 0.5, "knn": 0.5}, "minmax")
    assert mm["x"] == pytest.approx(0.5) and mm["y"] == pytest.approx(0.25 + 0.5) and mm["w"] == pytest.approx(0.0)
    zs = convex(routes, {"bm25": 1.0, "knn": 0.0}, "zscore")
    assert zs["x"] > zs["y"] > zs["z"]
    assert zs["w"] == pytest.approx(zs["z"])  # missing from bm25: that route's floor


def test_decisiveness_and_dynamic_weights_favour_the_route_that_separates_its_top_hit() -> None:
    clear = {"a": 10.0, "b": 2.0, "c": 1.9, "d": 1.8}
    flat = {"a": 0.50, "b": 0.49, "c": 0.48, "d": 0.47}
    assert decisiveness(clear) > 0.9 and decisiveness(flat) < 0.5
    w = decisiveness_weights({"bm25": clear, "knn": flat})
    assert w["bm25"] > w["knn"] and sum(w.values()) == pytest.approx(1.0)
    fused, weights = dynamic_margin({"bm25": clear, "knn": {"b": 0.50, "a": 0.49, "c": 0.48, "d": 0.47}})
    assert max(fused, key=fused.get) == "a" and weights == pytest.approx(decisiveness_weights(
        {"bm25": clear, "knn": {"b": 0.50, "a": 0.49, "c": 0.48, "d": 0.47}}))


def test_fuse_skips_empty_routes_and_rejects_unknown_methods() -> None:
    fused, weights = fuse("convex", {"bm25": {}, "knn": {"x": 1.0, "y": 0.0}})
    assert set(weights) == {"knn"} and fused["x"] == 1.0
    assert fuse("rrf", {"bm25": {}}) == ({}, {})
    with pytest.raises(ValueError):
        fuse("magic", {"knn": {"x": 1.0}})


@pytest.mark.parametrize(("body", "message"), [
    ({"q": ""}, "at least 1 character"),
    ({"q": "x" * 10_000}, "at most 1000 characters"),
    ({"q": "?!... ---"}, "no letters or digits"),
    ({"q": "cat", "k": 1001}, "less than or equal to 1000"),
    ({"q": "cat", "k": 500, "page": 3}, "page \\* k must be <= 1000"),
    ({"q": "cat", "filters": {"colour": "red"}}, "Extra inputs are not permitted"),
    ({"q": "cat", "routes": ["bm25", "telepathy"]}, "unknown routes"),
    ({"q": "cat", "fusion": "best"}, "dynamic_margin"),
])
def test_bad_requests_fail_validation_with_a_reason(body: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SearchRequest.model_validate(body)


def test_get_parameters_refuse_unknown_names() -> None:
    req = parse_query_params({"q": "cat", "k": "5", "routes": "bm25,knn_visual", "language": "en", "tags": "a,b"})
    assert req.routes == ("bm25", "knn_visual") and req.filters.tags == ["a", "b"] and req.k == 5
    with pytest.raises(ValueError, match="unknown parameter"):
        parse_query_params({"q": "cat", "colour": "red"})


def test_filters_translate_for_both_stores_and_cannot_be_injected() -> None:
    f = Filters(language='en" or id != "', duration_min=1, duration_max=5, tags=["a", 'b"]'],
                published_from=datetime(2024, 1, 1, tzinfo=UTC))
    expr = milvus_filter(f)
    assert 'language == "en\\" or id != \\""' in expr  # the quote stays inside the JSON string
    assert "duration >= 1.0" in expr and "published_at >= 1704067200000" in expr and "ARRAY_CONTAINS_ANY(tags" in expr
    clauses = opensearch_filter(f)
    assert {"term": {"language": 'en" or id != "'}} in clauses
    assert {"range": {"duration": {"gte": 1, "lte": 5}}} in clauses
    assert milvus_filter(Filters()) == "" and opensearch_filter(Filters()) == []


def test_moments_pick_the_matching_keyframe_window_and_transcript() -> None:
    q = np.array([1.0, 0.0, 0.0], np.float32)
    frames = [{"t": 0.0, "vector": [0, 1, 0]}, {"t": 2.0, "vector": [1, 0, 0]}, {"t": 4.0, "vector": [1, 0.2, 0]},
              {"t": 8.0, "vector": [0, 0, 1]}]
    m = best_moment(q, frames, [], duration=10.0)
    assert m is not None and m.evidence["kind"] == "keyframe" and m.evidence["t"] in (2.0, 4.0)
    assert keyframe_windows([0.0, 2.0, 4.0, 8.0], 10.0) == [(0.0, 1.0), (1.0, 3.0), (3.0, 6.0), (6.0, 10.0)]
    assert smooth(np.array([0.0, 1.0, 0.0])).tolist() == [0.25, 0.5, 0.25]
    segs = [{"start": 3.0, "end": 5.5, "text": "hello"}]
    m2 = best_moment(q, frames, segs, 10.0, embed_texts=lambda texts: np.array([[1.0, 0.0, 0.0]]))
    assert m2 is not None and m2.evidence == {"kind": "transcript", "text": "hello"} and (m2.start, m2.end) == (3.0, 5.5)
    assert best_moment(q, [], [], None) is None


def test_query_log_appends_and_skips_malformed_vectors(tmp_path: Path) -> None:
    log = QueryLog(tmp_path / "q.f32", dim=4)
    assert log.tail(10).shape == (0, 4)
    for i in range(5):
        log.append(np.full(4, i, np.float32))
    log.append(np.array([np.nan, 0, 0, 0]))
    log.append(np.zeros(3))
    tail = log.tail(3)
    assert tail.shape == (3, 4) and tail[:, 0].tolist() == [2.0, 3.0, 4.0]


def test_ncl_state_gives_a_new_video_its_half_step_bias(tmp_path: Path) -> None:
    from vidsearch.plugins.retrieval.ncl_index import NclState, compute_bias
    from vidsearch.plugins.retrieval.ncl_source import NclSource

    rng = np.random.default_rng(0)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    videos = unit(rng.standard_normal((12, 16))).astype(np.float32)
    bank = unit(rng.standard_normal((40, 16))).astype(np.float32)
    bias, state = compute_bias({f"v{i}": v for i, v in enumerate(videos)}, bank, 0.1)
    # for a video the run already balanced, the half-step reproduces its bias
    assert state.bias(videos[3]) == pytest.approx(bias["v3"], abs=1e-4)
    hub = unit(bank.mean(0, keepdims=True))[0]  # close to every bank query: must get a low bias
    assert state.bias(hub) < min(bias.values()) and state.bias(np.zeros(16, np.float32)) == 0.0
    path = tmp_path / "ncl" / "x.npz"
    state.save(path)
    assert NclState.load(path).bias(videos[3]) == pytest.approx(state.bias(videos[3]))
    source = NclSource.__new__(NclSource)
    source.path, source._mtime, source._state = path, None, None
    assert source() is not None and source().n_videos == 12
    path.write_bytes(b"not an npz")
    import os

    os.utime(path, ns=(1, 1))
    assert source() is None  # a torn file means no bias, never a crash
