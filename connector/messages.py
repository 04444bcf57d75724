"""Source-agnostic message and dead-letter records."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class DeadLetter:
    message: Message
    error_class: str
    reason: str
    stage: str
    attempts: int = 1

    def headers(self) -> list[tuple[str, bytes]]:
        m = self.message
        return [
            *m.headers,
            ("x-error-class", self.error_class.encode()),
            ("x-error-message", self.reason[:4000].encode("utf-8", "replace")),
            ("x-error-stage", self.stage.encode()),
            ("x-attempts", str(self.attempts).encode()),
            ("x-original-topic", m.topic.encode()),
            ("x-original-partition", str(m.partition).encode()),
            ("x-original-offset", str(m.offset).encode()),
        ]
