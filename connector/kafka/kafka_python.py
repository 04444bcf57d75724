"""kafka-python implementation of the Kafka source and producer.

Differences from librdkafka that this module absorbs, so the source keeps the same semantics:
- `poll` returns as soon as any record is buffered; `_fetch` keeps polling until the batch is
  full or its time is up, as confluent's `consume(num_messages, timeout)` does;
- errors are Python exceptions (a broker that cannot be reached surfaces as KafkaTimeoutError,
  even at construction, which bootstraps synchronously); they are mapped onto the taxonomy here;
- rebalance callbacks run on the client's IO thread, hence the source's immutable `assigned`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kerr
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from vidsearch.connector.kafka.config import check_files, kafka_python_config
from vidsearch.connector.kafka.errors import KafkaConfigError, KafkaUnavailableError
from vidsearch.connector.kafka.producer import MAX_MESSAGE_BYTES
from vidsearch.connector.messages import Message
from vidsearch.connector.sources.kafka import (
    FETCH_MAX_BYTES,
    HEARTBEAT_INTERVAL_MS,
    SESSION_TIMEOUT_MS,
    KafkaSource,
    Partition,
)
from vidsearch.core.settings import KafkaSettings, Settings

log = logging.getLogger(__name__)
COMMIT_TIMEOUT_MS = 30_000
BOOTSTRAP_TIMEOUT_MS = 30_000  # construction fails (KafkaUnavailableError) after this without a broker
PRODUCER_BATCH_BYTES = 1024**2  # librdkafka's default batch.size; kafka-python's 16 KiB halves throughput
# A commit refused because the group moved on (kafka-python wraps the broker's generation and
# member errors into CommitFailedError): the new owner replays, the stores are idempotent.
REBALANCE_ERRORS = (kerr.CommitFailedError, kerr.RebalanceInProgressError, kerr.IllegalGenerationError, kerr.UnknownMemberIdError)
# Settings (or a client version) the broker or the client refuses: a deployment error.
CONFIG_ERRORS = (kerr.KafkaConfigurationError, kerr.UnsupportedVersionError, kerr.SaslAuthenticationFailedError,
                 kerr.AuthorizationError, ValueError, TypeError, AssertionError)


def is_rebalance(exc: BaseException) -> bool:
    """True for a commit refused because this member no longer owns the partitions."""
    return isinstance(exc, REBALANCE_ERRORS)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """kafka-python's exceptions at construction -> KafkaConfigError / KafkaUnavailableError."""
    try:
        yield
    except CONFIG_ERRORS as exc:
        raise KafkaConfigError(f"kafka-python refused the kafka settings ({what}): {type(exc).__name__}: {exc}") from exc
    except kerr.KafkaError as exc:
        raise KafkaUnavailableError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _message(rec: Any) -> Message:
    return Message(rec.topic, rec.partition, rec.offset, rec.key, rec.value, list(rec.headers or []))


class KafkaPythonProducer:
    def __init__(self, settings: KafkaSettings, linger_ms: int = 5) -> None:
        check_files(settings)
        conf = kafka_python_config(settings)
        with translated("producer"):
            self._producer = KafkaProducer(
                **conf,
                acks="all",
                enable_idempotence=True,
                linger_ms=linger_ms,
                batch_size=PRODUCER_BATCH_BYTES,
                max_request_size=MAX_MESSAGE_BYTES,
                max_block_ms=30_000,
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
            )
        self._pending: list[Any] = []
        self._failures: list[str] = []

    def produce(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> None:
        try:
            self._pending.append(self._producer.send(topic, value=value, key=key, headers=headers or None))
        except kerr.KafkaError as exc:  # metadata unavailable within max_block_ms, record too large
            self._failures.append(f"{type(exc).__name__}: {exc}")

    def flush(self, timeout_s: float) -> list[str]:
        try:
            self._producer.flush(timeout=timeout_s)
        except kerr.KafkaError as exc:  # KafkaTimeoutError: counted below as unacknowledged
            log.warning("kafka-python flush did not complete error=%s", exc)
        pending, self._pending = self._pending, []
        failures, self._failures = self._failures, []
        undone = 0
        for fut in pending:
            if not fut.is_done:
                undone += 1
            elif fut.failed():
                failures.append(f"{type(fut.exception).__name__}: {fut.exception}")
        if undone:
            failures.append(f"{undone} records not acknowledged within {timeout_s:g}s")
        return failures

    def close(self, timeout_s: float = 10.0) -> None:
        try:
            self._producer.close(timeout=timeout_s)
        except kerr.KafkaError as exc:
            log.warning("kafka-python producer close error=%s", exc)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, source: KafkaPythonSource) -> None:
        self.source = source

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.source._revoked_now([(tp.topic, tp.partition) for tp in revoked])

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.source._assigned_now([(tp.topic, tp.partition) for tp in assigned])


class KafkaPythonSource(KafkaSource):
    client = "kafka-python"

    def _open(self, settings: Settings) -> None:
        check_files(settings.kafka)
        conf = kafka_python_config(settings.kafka)
        with translated("consumer"):
            self.consumer = KafkaConsumer(
                **conf,
                group_id=self.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_interval_ms=self.max_poll_interval_ms,
                session_timeout_ms=SESSION_TIMEOUT_MS,
                heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
                fetch_max_bytes=FETCH_MAX_BYTES,
                allow_auto_create_topics=False,  # as librdkafka's consumer: subscribing creates nothing
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
            )
            self.consumer.subscribe([self.topic], listener=_Listener(self))

    def _poll(self, timeout_s: float, max_records: int) -> list[Message]:
        try:
            got = self.consumer.poll(timeout_ms=int(max(0.0, timeout_s) * 1000), max_records=max_records)
        except kerr.KafkaError as exc:  # like librdkafka's consume errors: log, deliver nothing
            log.warning("kafka consume error error=%s", exc)
            time.sleep(min(max(timeout_s, 0.0), 0.5))
            return []
        return [_message(rec) for recs in got.values() for rec in recs]

    def _fetch(self, max_events: int, timeout_s: float) -> list[Message]:
        deadline = time.monotonic() + timeout_s
        out: list[Message] = []
        while True:
            out += self._poll(deadline - time.monotonic(), max_events - len(out))
            if len(out) >= max_events or time.monotonic() >= deadline:
                return out

    def _poll_paused(self, timeout_s: float) -> list[Message]:
        return self._poll(timeout_s, 100)

    def _commit(self, offsets: dict[Partition, int]) -> None:
        try:
            self.consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()},
                                 timeout_ms=COMMIT_TIMEOUT_MS)
        except kerr.KafkaError as exc:
            if is_rebalance(exc):
                log.warning("commit refused after a rebalance; the new owner replays error=%s", exc)
                return
            raise KafkaUnavailableError(f"offset commit failed: {type(exc).__name__}: {exc}") from exc

    def _seek(self, tp: Partition, offset: int) -> None:
        try:
            self.consumer.seek(TopicPartition(*tp), offset)
        except (ValueError, kerr.KafkaError) as exc:  # taken away meanwhile: its new owner reads from the commit
            log.warning("seek failed partition=%s offset=%s error=%s", tp, offset, exc)

    def _pause_partitions(self, parts: list[Partition]) -> None:
        for tp in parts:
            try:
                self.consumer.pause(TopicPartition(*tp))
            except KeyError:  # no longer assigned
                pass

    def _resume_partitions(self, parts: list[Partition]) -> None:
        for tp in parts:
            try:
                self.consumer.resume(TopicPartition(*tp))
            except KeyError:
                pass

    def _end_offsets(self, parts: list[Partition]) -> dict[Partition, int]:
        ends = self.consumer.end_offsets([TopicPartition(*tp) for tp in parts], timeout_ms=2000)
        return {(tp.topic, tp.partition): int(o) for tp, o in ends.items()}

    def _position(self, tp: Partition) -> int | None:
        pos = self.consumer.position(TopicPartition(*tp), timeout_ms=2000)
        return None if pos is None else int(pos)

    def _close(self) -> None:
        self.consumer.close(autocommit=False)
