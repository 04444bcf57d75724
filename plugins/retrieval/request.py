"""What a search asks for, validated once at the edge (CLI, HTTP, Python) with clear 4xx messages."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_QUERY_CHARS = 1000
MAX_K = 1000
FUSIONS = ("dynamic_margin", "rrf", "convex")
ROUTES = ("bm25", "knn", "knn_text", "knn_visual", "knn_speech", "knn_ocr", "knn_audio")


class Filters(BaseModel):
    """Applied inside every route (efficient filtering), never after fusion."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    language: str | None = Field(None, max_length=16)
    duration_min: float | None = Field(None, ge=0)
    duration_max: float | None = Field(None, ge=0)
    published_from: datetime | None = None
    published_to: datetime | None = None
    tags: list[str] | None = Field(None, max_length=50)

    def is_empty(self) -> bool:
        return all(v is None for v in self.model_dump().values())


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    q: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(10, ge=1, le=MAX_K)
    page: int = Field(1, ge=1, le=1000)
    fusion: Literal["dynamic_margin", "rrf", "convex"] = "dynamic_margin"
    normalization: Literal["minmax", "zscore"] = "minmax"
    routes: tuple[str, ...] = ("bm25", "knn")
    weights: dict[str, float] | None = None
    ncl: bool = False
    explain: bool = False
    moments: bool = True
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
