"""`Filters` -> a Milvus boolean expression, evaluated inside each search (never after it), so a
filtered query still returns k hits.

Filter values come from untrusted HTTP clients, so every string goes through `quote`: a string
literal no value can break out of. It is JSON's quoting with two differences Milvus's expression
parser forces: non-ASCII characters stay as they are (the parser knows no `\\uXXXX` escape, so
`json.dumps`' default turns "café" into a parse error), and only `\\\\ \\" \\n \\r \\t` are escaped
(it knows no `\\b` or `\\f`; other control characters are accepted raw).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from vidsearch.core.filters import Filters

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(value: str) -> str:
    """A Milvus string literal holding exactly `value`."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in str(value)) + '"'


def quote_list(values: Iterable[str]) -> str:
    """A Milvus list literal of strings (for `in` and `ARRAY_CONTAINS_ANY`)."""
    return "[" + ", ".join(quote(v) for v in values) + "]"


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def to_expr(f: Filters | None) -> str:
    """The expression for `f` ("" when nothing is filtered). Missing values are stored as -1
    (duration, published_at; see `videos.to_row`), so an upper bound also requires >= 0: a video
    without a duration never passes a duration filter, as in OpenSearch where the field is absent."""
    if f is None:
        return ""
    parts = []
    if f.language:
        parts.append(f"language == {quote(f.language)}")
    if f.duration_min is not None:
        parts.append(f"duration >= {float(f.duration_min)!r}")
    if f.duration_max is not None:
        parts.append(f"(duration <= {float(f.duration_max)!r} and duration >= 0)")
    if f.published_from:
        parts.append(f"published_at >= {_ms(f.published_from)}")
    if f.published_to:
        parts.append(f"(published_at <= {_ms(f.published_to)} and published_at >= 0)")
    if f.tags:
        parts.append(f"ARRAY_CONTAINS_ANY(tags, {quote_list(f.tags)})")
    return " and ".join(parts)
