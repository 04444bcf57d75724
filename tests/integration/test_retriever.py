"""The hybrid retriever against the real stack: OpenSearch (BM25 + lucene k-NN) and Milvus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cleanup import fresh_name
from tests.integration.retrieval_helpers import CATALOGUE, drop_catalogue, load, scoped
from vidsearch.core.filters import Filters
from vidsearch.core.settings import Settings
from vidsearch.plugins.retrieval.build import build_retriever
from vidsearch.plugins.retrieval.errors import AllRoutesFailedError
from vidsearch.plugins.retrieval.request import SearchRequest

pytestmark = [pytest.mark.integration, pytest.mark.models]


@pytest.fixture(scope="module")
def text():
    from vidsearch.encoders.text import MiniLMEncoder

    return MiniLMEncoder()


@pytest.fixture(scope="module")
def catalogue(stack: object, settings: Settings, text) -> Iterator[Settings]:  # noqa: ANN001
    s = scoped(settings, fresh_name("retr"), fallback=True)
    try:
        load(s, text)
        yield s
    finally:
        drop_catalogue(s)


def ids(res) -> list[str]:  # noqa: ANN001
    return [h.video_id for h in res.hits]


@pytest.mark.parametrize("store", ["opensearch", "milvus"])
def test_hybrid_finds_by_title_and_by_what_the_video_shows(catalogue: Settings, text, store: str) -> None:  # noqa: ANN001
    s = catalogue.model_copy(update={"retrieval": catalogue.retrieval.model_copy(update={"lexical_store": store, "dense_store": store})})
    r = build_retriever(s, text=text)
    res = r.search(SearchRequest(q="fire truck", k=5, explain=True))
    top = ids(res)
    assert {"fire-truck", "parade"} <= set(top[:3]), top  # one by its frames, one by its title
    parade = next(h for h in res.hits if h.video_id == "parade")
    assert parade.explain["bm25"].rank == 1 and parade.explain["bm25"].store == store
    truck = next(h for h in res.hits if h.video_id == "fire-truck")
    assert truck.explain["bm25"].rank is None and truck.explain["knn"].rank is not None
    assert not res.degraded and set(res.weights) == {"bm25", "knn"}
    dense = r.search(SearchRequest(q="a kitten", routes=("knn",), k=3))
    assert set(ids(dense)[:2]) == {"kitten", "chaton"}


def test_filters_apply_inside_each_route(catalogue: Settings, text) -> None:  # noqa: ANN001
    r = build_retriever(catalogue, text=text)
    res = r.search(SearchRequest(q="a red vehicle", k=10, filters=Filters(language="fr")))
    fr = {v for v, row in CATALOGUE.items() if row[2] == "fr"}
    assert set(ids(res)) == fr  # every French video, and only those: k-NN filtered before top-k
    tagged = r.search(SearchRequest(q="a red vehicle", k=10, filters=Filters(tags=["vehicles"], duration_max=10)))
    assert set(ids(tagged)) == {"fire-truck", "voiture"}


def test_pages_are_disjoint_and_ranked_continuously(catalogue: Settings, text) -> None:  # noqa: ANN001
    r = build_retriever(catalogue, text=text)
    p1 = r.search(SearchRequest(q="animals playing", k=4, page=1))
    p2 = r.search(SearchRequest(q="animals playing", k=4, page=2))
    assert not set(ids(p1)) & set(ids(p2))
    assert [h.rank for h in p1.hits + p2.hits] == list(range(1, 9))
    assert p1.hits[-1].score >= p2.hits[0].score


def test_moments_point_at_the_matching_keyframe_or_segment(catalogue: Settings, text) -> None:  # noqa: ANN001
    r = build_retriever(catalogue, text=text)
    truck = next(h for h in r.search(SearchRequest(q="a red fire truck with a ladder", k=3)).hits if h.video_id == "fire-truck")
    assert truck.moment is not None and truck.moment.evidence == {"kind": "keyframe", "t": 4.5}
    assert truck.moment.start < 4.5 < truck.moment.end
    guitar = next(h for h in r.search(SearchRequest(q="play the g chord", k=3)).hits if h.video_id == "guitar")
    assert guitar.moment is not None and guitar.moment.evidence["kind"] == "transcript"
    assert (guitar.moment.start, guitar.moment.end) == (1.0, 4.0)


def test_opensearch_down_degrades_to_milvus(catalogue: Settings, text) -> None:  # noqa: ANN001
    dead = catalogue.model_copy(update={"opensearch": catalogue.opensearch.model_copy(update={"url": "http://127.0.0.1:1"}),
                                        "retrieval": catalogue.retrieval.model_copy(update={"lexical_store": "opensearch",
                                                                                              "dense_store": "opensearch"})})
    res = build_retriever(dead, text=text).search(SearchRequest(q="fire truck", k=5, explain=True))
    assert res.degraded and any("opensearch unavailable" in w for w in res.warnings)
    assert {"fire-truck", "parade"} <= set(ids(res)[:3])
    assert all(e.store == "milvus" for e in res.hits[0].explain.values())


def test_milvus_down_degrades_to_opensearch(catalogue: Settings, text) -> None:  # noqa: ANN001
    dead = catalogue.model_copy(update={"milvus": catalogue.milvus.model_copy(update={"uri": "http://127.0.0.1:1"}),
                                        "retrieval": catalogue.retrieval.model_copy(update={"lexical_store": "milvus",
                                                                                              "dense_store": "milvus"})})
    res = build_retriever(dead, text=text).search(SearchRequest(q="fire truck", k=5))
    assert res.degraded and any("milvus unavailable" in w for w in res.warnings)
    assert "parade" in ids(res)[:3]


def test_everything_down_is_an_error(catalogue: Settings, text) -> None:  # noqa: ANN001
    dead = catalogue.model_copy(update={"milvus": catalogue.milvus.model_copy(update={"uri": "http://127.0.0.1:1"}),
                                        "opensearch": catalogue.opensearch.model_copy(update={"url": "http://127.0.0.1:1"})})
    with pytest.raises(AllRoutesFailedError, match="no route could be served"):
        build_retriever(dead, text=text).search(SearchRequest(q="fire truck"))


def test_embedded_milvus_lite_serves_the_same_retriever(settings: Settings, text, tmp_path: Path) -> None:  # noqa: ANN001
    s = scoped(settings, "emb", fallback=True)
    s = s.model_copy(update={"milvus": s.milvus.model_copy(update={"uri": str(tmp_path / "lite.db")}),
                             "indexer": s.indexer.model_copy(update={"sinks": ("milvus",)})})
    load(s, text, sinks=("milvus",))
    res = build_retriever(s, text=text).search(SearchRequest(q="fire truck", k=5, explain=True))
    assert {"fire-truck", "parade"} <= set(ids(res)[:3]) and not res.degraded
    assert {e.store for e in res.hits[0].explain.values()} == {"milvus"}


def test_ncl_recompute_demotes_a_hub(catalogue: Settings, text) -> None:  # noqa: ANN001
    import numpy as np

    from vidsearch.plugins.backends import open_store
    from vidsearch.plugins.retrieval.ncl_index import recompute

    # a bank whose queries all land on "dog": NCL must lower the dog's bias below everyone else's
    bank = text.encode([f"a dog {w}" for w in ("running", "barking", "jumping", "sleeping", "eating", "swimming")] * 5)
    stores = [open_store(name, catalogue) for name in ("opensearch", "milvus")]
    report = recompute(bank, 0.05, stores)
    assert report.videos == len(CATALOGUE) and report.updated == {"opensearch": len(CATALOGUE), "milvus": len(CATALOGUE)}
    for store in ("opensearch", "milvus"):
        s = catalogue.model_copy(update={"retrieval": catalogue.retrieval.model_copy(update={"dense_store": store})})
        r = build_retriever(s, text=text)
        plain = r.search(SearchRequest(q="a dog in a park", routes=("knn",), k=12))
        ncl = r.search(SearchRequest(q="a dog in a park", routes=("knn",), k=12, ncl=True))
        assert ids(plain)[0] == "dog"
        assert ids(ncl).index("dog") > ids(plain).index("dog"), (store, ids(ncl))
        # ranked exactly by s + tau*beta: the IP scores differ from cosine by the stored bias
        assert all(np.isfinite(h.score) for h in ncl.hits)
    for store in stores:  # the bias is stored with the document's own version, in each store
        assert store.vectors("vec_ncl")["dog"][-1] < 0 and store.id_versions()["dog"][0] == 1, store.name
        store.close()
