"""The evaluation dataset format: a folder with `videos.jsonl` and `queries.jsonl`.

videos.jsonl : {"video_id", "path", "title", "description", "subset"[, "split"]}
queries.jsonl: {"query_id", "text", "relevant": [video_id, ...][, "moment": [start, end]]}

`path` is relative to the folder (or absolute). `split` is optional (train/val/test); a folder
without it is all test, so `vidsearch eval` works on any folder in this format. A query belongs to
the split of its relevant videos. A query with a `moment` (the moment benchmark) has one relevant
video and the seconds of it that answer the query. Every problem is a `DatasetError` naming the
file and line, so a broken folder fails before any model is loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vidsearch.core.errors import VidsearchError

SPLITS = ("train", "val", "test")
SUBSETS = ("text_rich", "text_poor")
SubsetName = Literal["text_rich", "text_poor"]
SplitName = Literal["train", "val", "test"]


class DatasetError(VidsearchError):
    """A dataset folder is missing files, malformed, or inconsistent."""


class VideoRecord(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    video_id: str = Field(min_length=1, max_length=256)
    path: str = Field(min_length=1)
    title: str = ""
    description: str = ""
    subset: SubsetName = "text_rich"
    split: SplitName = "test"


Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class QueryRecord(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    query_id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    relevant: list[str] = Field(min_length=1)
    moment: tuple[Seconds, Seconds] | None = None  # (start, end) of the answer inside relevant[0]

    @model_validator(mode="after")
    def _moment_is_a_span_of_one_video(self) -> QueryRecord:
        if self.moment is not None:
            if self.moment[1] <= self.moment[0]:
                raise ValueError(f"moment must end after it starts, got {list(self.moment)}")
            if len(self.relevant) != 1:
                raise ValueError("a query with a moment has exactly one relevant video")
        return self


@dataclass
class Dataset:
    root: Path
    videos: list[VideoRecord]
    queries: list[QueryRecord]
    by_id: dict[str, VideoRecord] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {v.video_id: v for v in self.videos}

    def media_path(self, video: VideoRecord) -> Path:
        p = Path(video.path)
        return p if p.is_absolute() else self.root / p

    def split(self, name: str) -> tuple[list[VideoRecord], list[QueryRecord]]:
        """Videos of a split and the queries whose relevant videos lie in it (restricted to it)."""
        vids = [v for v in self.videos if v.split == name]
        ids = {v.video_id for v in vids}
        qs = []
        for q in self.queries:
            rel = [r for r in q.relevant if r in ids]
            if rel:
                qs.append(q.model_copy(update={"relevant": rel}))
        if not vids or not qs:
            raise DatasetError(f"{self.root}: split {name!r} is empty ({len(vids)} videos, {len(qs)} queries)")
        return vids, qs

    def fingerprint(self) -> str:
        """Hash of the records (not the media), for the model card."""
        h = hashlib.sha256()
        for name in ("videos.jsonl", "queries.jsonl"):
            h.update((self.root / name).read_bytes())
        return h.hexdigest()[:16]


def _read_jsonl(path: Path, model: type[BaseModel]) -> list:
    if not path.is_file():
        raise DatasetError(f"{path}: missing (a dataset folder needs videos.jsonl and queries.jsonl)")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(model.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "record"
            raise DatasetError(f"{path}:{n}: {where}: {first['msg']}") from exc
    if not out:
        raise DatasetError(f"{path}: no records")
    return out


def load_dataset(root: Path) -> Dataset:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    videos: list[VideoRecord] = _read_jsonl(root / "videos.jsonl", VideoRecord)
    queries: list[QueryRecord] = _read_jsonl(root / "queries.jsonl", QueryRecord)
    seen: set[str] = set()
    for v in videos:
        if v.video_id in seen:
            raise DatasetError(f"{root / 'videos.jsonl'}: duplicate video_id {v.video_id!r}")
        seen.add(v.video_id)
    qids: set[str] = set()
    for q in queries:
        if q.query_id in qids:
            raise DatasetError(f"{root / 'queries.jsonl'}: duplicate query_id {q.query_id!r}")
        qids.add(q.query_id)
        unknown = [r for r in q.relevant if r not in seen]
        if unknown:
            raise DatasetError(f"{root / 'queries.jsonl'}: query {q.query_id!r} names unknown video ids {unknown[:5]}")
    return Dataset(root, videos, queries)


def write_jsonl(path: Path, records: Sequence[BaseModel]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r.model_dump(), ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    tmp.replace(path)
