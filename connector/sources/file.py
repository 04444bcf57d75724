"""File source (the embedded default): a JSONL file of events, or a folder of videos.

Progress is checkpointed in `<state>/file-source/<hash>.offset` so a rerun resumes after the
last acknowledged line; dead letters go to `<file>.dlq.jsonl` beside the checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from vidsearch.connector.messages import DeadLetter, Message
from vidsearch.core.constants import VIDEO_EXT


def folder_events(folder: Path) -> list[bytes]:
    """One upsert per video file: id = file stem, version = mtime in ms, title = the stem."""
    events = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_EXT):
        vid = "".join(c if c.isalnum() or c in "._-" else "_" for c in path.stem) or "video"
        ev = {"schema_version": 1, "op": "upsert", "video_id": vid, "version": int(path.stat().st_mtime * 1000),
              "title": path.stem.replace("_", " "), "media_uri": str(path.resolve())}
        events.append(json.dumps(ev).encode())
    return events


class FileSource:
    name = "file"

    def __init__(self, path: Path, state_dir: Path, restart: bool = False) -> None:
        self.path = path
        self.lines = folder_events(path) if path.is_dir() else path.read_bytes().splitlines()
        key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        self.state = state_dir / "file-source"
        self.state.mkdir(parents=True, exist_ok=True)
        self.checkpoint = self.state / f"{key}.offset"
        self.dlq_file = self.state / f"{key}.dlq.jsonl"
        if restart:
            self.checkpoint.unlink(missing_ok=True)
        self.position = int(self.checkpoint.read_text()) if self.checkpoint.exists() else 0
        self.committed = self.position

    def poll(self, max_events: int, timeout_s: float) -> list[Message]:
        out: list[Message] = []
        while len(out) < max_events and self.position < len(self.lines):
            line = self.lines[self.position]
            if line.strip():
                out.append(Message(str(self.path), 0, self.position, None, line))
            self.position += 1
        return out

    def commit(self, batch: list[Message]) -> None:
        if batch:
            self.committed = batch[-1].offset + 1
            self.checkpoint.write_text(str(self.committed))

    def rewind(self, batch: list[Message]) -> None:
        if batch:
            self.position = batch[0].offset

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def keepalive(self, timeout_s: float) -> None:
        time.sleep(timeout_s)  # nothing to keep alive; just do not spin

    def dead_letter(self, records: list[DeadLetter]) -> None:
        with open(self.dlq_file, "a") as fh:
            for r in records:  # the same bounded record as the Kafka DLQ (value cut, sha256 and length kept)
                headers = dict(r.headers())
                fh.write(json.dumps({"offset": r.message.offset, "stage": r.stage, "error_class": r.error_class,
                                     "reason": headers["x-error-message"].decode(),
                                     "original_sha256": headers["x-original-sha256"].decode(),
                                     "original_length": int(headers["x-original-length"]),
                                     "truncated": r.truncated,
                                     "value_b64": base64.b64encode(r.payload() or b"").decode()}) + "\n")

    def ready(self) -> bool:
        return True

    def exhausted(self) -> bool:
        return self.position >= len(self.lines)

    def lag(self) -> dict[str, int]:
        """Events of the file not yet committed (one partition, "0")."""
        return {"0": len(self.lines) - self.committed}

    def status(self) -> dict[str, Any]:
        return {"path": str(self.path), "committed": self.committed, "total": len(self.lines), "dlq_file": str(self.dlq_file)}

    def close(self) -> None:
        pass
