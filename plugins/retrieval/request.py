"""What a search asks for, validated once at the edge (CLI, HTTP, Python) with clear 4xx messages.

Requests come from untrusted HTTP clients: every field is bounded (lengths, counts, ranges) and
every number must be finite, so no request can make a store or the fusion do unbounded work or
compute with NaN.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vidsearch.core.filters import Filters

MAX_QUERY_CHARS = 1000
MAX_K = 1000
FUSIONS = ("dynamic_margin", "rrf", "convex", "opensearch_hybrid")
ROUTES = ("bm25", "knn", "knn_text", "knn_visual", "knn_speech", "knn_ocr", "knn_audio")
MAX_WEIGHT = 100.0

Weight = Annotated[float, Field(ge=0, le=MAX_WEIGHT, allow_inf_nan=False)]


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    q: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(10, ge=1, le=MAX_K)
    page: int = Field(1, ge=1, le=1000)
    fusion: Literal["dynamic_margin", "rrf", "convex", "opensearch_hybrid"] = "dynamic_margin"
    normalization: Literal["minmax", "zscore"] = "minmax"
    routes: tuple[str, ...] = ("bm25", "knn")
    weights: dict[str, Weight] | None = Field(None, max_length=len(ROUTES))
    ncl: bool = False
    explain: bool = False
    moments: bool = True
    # One hit per video with up to `moments_per_video` moments (best first), or one hit per moment.
    group_by: Literal["video", "moment"] = "video"
    moments_per_video: int = Field(1, ge=1, le=10)
    min_score: float | None = Field(None, allow_inf_nan=False)  # drop hits whose fused score is lower
    autocut: int | None = Field(None, ge=1, le=10)  # keep hits before the N-th cliff in the fused scores
    filters: Filters = Field(default_factory=Filters)

    @field_validator("q")
    @classmethod
    def _has_words(cls, v: str) -> str:
        if not re.search(r"\w", v):
            raise ValueError("query has no letters or digits")
        return v.strip()

    @field_validator("routes")
    @classmethod
    def _known_routes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [r for r in v if r not in ROUTES]
        if unknown or not v:
            raise ValueError(f"unknown routes {unknown}; choose from {list(ROUTES)}")
        return tuple(dict.fromkeys(v))

    @model_validator(mode="after")
    def _window(self) -> SearchRequest:
        if self.page * self.k > MAX_K:
            raise ValueError(f"page * k must be <= {MAX_K}")
        return self

    @model_validator(mode="after")
    def _weights_name_routes(self) -> SearchRequest:
        """Weights only for the routes asked for (a weight for another route would be silently
        ignored by fusion), and not all zero (that would rank every hit equal)."""
        if self.weights is None:
            return self
        stray = sorted(set(self.weights) - set(self.routes))
        if stray:
            raise ValueError(f"weights for routes not requested {stray}; routes are {list(self.routes)}")
        if self.weights and not any(w > 0 for w in self.weights.values()):
            raise ValueError("at least one weight must be > 0")
        return self
