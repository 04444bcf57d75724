"""Metadata filters a search applies inside every route (never after fusion), validated once at the
edge. Every value is bounded and finite: filters come from untrusted HTTP clients, and each
backend turns them into its own query language (see `plugins/<engine>/filters.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_TAG_CHARS = 100
Duration = Annotated[float, Field(ge=0, le=1e7, allow_inf_nan=False)]
Tag = Annotated[str, Field(min_length=1, max_length=MAX_TAG_CHARS)]


class Filters(BaseModel):
    """Applied inside every route (efficient filtering), never after fusion."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    language: str | None = Field(None, max_length=16)
    duration_min: Duration | None = None
    duration_max: Duration | None = None
    published_from: datetime | None = None
    published_to: datetime | None = None
    tags: list[Tag] | None = Field(None, max_length=50)

    @model_validator(mode="after")
    def _ranges(self) -> Filters:
        if self.duration_min is not None and self.duration_max is not None and self.duration_min > self.duration_max:
            raise ValueError("duration_min must be <= duration_max")
        if self.published_from and self.published_to:
            try:
                inverted = self.published_from > self.published_to
            except TypeError as exc:  # one aware, one naive: no order between them
                raise ValueError("published_from and published_to must both have a time zone or neither") from exc
            if inverted:
                raise ValueError("published_from must be <= published_to")
        return self

    def is_empty(self) -> bool:
        return all(v is None for v in self.model_dump().values())
