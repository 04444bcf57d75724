"""`Filters` -> OpenSearch query clauses.

The same clauses serve both routes: BM25 puts them in a bool `filter` (no scoring, cached), the
lucene k-NN clause takes them as its own `filter`, so OpenSearch filters while it walks the HNSW
graph and a filtered query still returns k hits (a post-filter would return fewer)."""

from __future__ import annotations

from typing import Any

from vidsearch.core.filters import Filters


def clauses(f: Filters) -> list[dict[str, Any]]:
    """Filter clauses (AND of all), empty when nothing is filtered. Values are already bounded and
    finite (validated by `Filters`); they travel as JSON values, never spliced into a string."""
    out: list[dict[str, Any]] = []
    if f.language:
        out.append({"term": {"language": f.language}})
    if f.duration_min is not None or f.duration_max is not None:
        rng = {k: v for k, v in (("gte", f.duration_min), ("lte", f.duration_max)) if v is not None}
        out.append({"range": {"duration": rng}})
    if f.published_from or f.published_to:
        dates = {k: v.isoformat() for k, v in (("gte", f.published_from), ("lte", f.published_to)) if v}
        out.append({"range": {"published_at": dates}})
    if f.tags:
        out.append({"terms": {"tags": list(f.tags)}})  # any of the tags
    return out


def knn_filter(f: Filters) -> dict[str, Any] | None:
    """The `filter` of a lucene k-NN clause (None: unfiltered)."""
    found = clauses(f)
    return {"bool": {"filter": found}} if found else None
