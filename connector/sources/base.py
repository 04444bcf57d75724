"""What the runner needs from an event source; Kafka and files implement it."""

from __future__ import annotations

from typing import Any, Protocol

from vidsearch.connector.messages import DeadLetter, Message


class Source(Protocol):
    name: str

    def poll(self, max_events: int, timeout_s: float) -> list[Message]:
        """The next messages, possibly none."""

    def commit(self, batch: list[Message]) -> None:
        """Acknowledge everything up to and including `batch` (called only after the sinks did)."""

    def rewind(self, batch: list[Message]) -> None:
        """Deliver `batch` again on the next poll (its sinks did not acknowledge)."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def keepalive(self, timeout_s: float) -> None:
        """Called (paused) while a batch is processed or the stores are down: keep the group
        membership alive without delivering messages; may block up to `timeout_s`."""

    def dead_letter(self, records: list[DeadLetter]) -> None:
        """Persist dead letters durably before the batch is committed; raise if it cannot."""

    def ready(self) -> bool:
        """True once the source can deliver (Kafka: partitions assigned after a rebalance)."""

    def exhausted(self) -> bool:
        """True when a bounded source has nothing left (files); Kafka never is."""

    def status(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class EventProducer(Protocol):
    """What the DLQ, `dlq replay`, the benchmarks and the tests need to write to Kafka; one
    implementation per client (`vidsearch.connector.kafka.producer.make_producer`). Records are
    sent with acks=all and idempotence; a key lands on the partition a Java producer picks
    (murmur2), whichever client sent it."""

    def produce(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> None:
        """Queue one record; never raises for a delivery problem, `flush` reports it."""

    def flush(self, timeout_s: float) -> list[str]:
        """Wait up to `timeout_s` for every queued record: the errors of the records that were
        not acknowledged since the last flush (those still pending included); empty when all were."""

    def close(self, timeout_s: float = 10.0) -> None: ...
