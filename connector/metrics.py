"""Prometheus metrics of the indexer (events in/out, DLQ, consumer lag, per-stage latency, pauses).

The runner sets the lag gauge every `indexer.status_interval_s` from the source (end offsets
against what this process committed); docs/operations.md says what each metric means."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_in = Counter("vidsearch_events_in_total", "Events read from the source", registry=r)
        self.events_out = Counter("vidsearch_events_out_total", "Events acknowledged, by outcome", ["outcome"], registry=r)
        self.dlq = Counter("vidsearch_dlq_total", "Events dead-lettered, by stage", ["stage"], registry=r)
        self.lag = Gauge("vidsearch_consumer_lag", "Messages behind the end of the partition", ["partition"], registry=r)
        self.stage_seconds = Histogram("vidsearch_stage_seconds", "Per-batch stage latency", ["stage"], registry=r)
        self.sink_seconds = Histogram("vidsearch_sink_seconds", "Per-batch sink write latency", ["sink"], registry=r)
        self.divergence = Counter("vidsearch_store_divergence_total", "Documents one store refused after another took them", ["refused_by"], registry=r)
        self.dead_by_class = Counter("vidsearch_dlq_by_class_total", "Events dead-lettered, by error class", ["error_class"], registry=r)
        self.in_flight = Gauge("vidsearch_batches_in_flight", "Batches between poll and commit (at most indexer.pipeline_depth)", registry=r)
        self.paused = Gauge("vidsearch_paused", "1 while a store is unavailable and the source is paused", registry=r)

    def record(self, result: Any) -> None:
        self.events_out.labels("indexed").inc(result.indexed)
        self.events_out.labels("deleted").inc(result.deleted)
        self.events_out.labels("stale").inc(result.stale)
        for d in result.dead:
            self.dlq.labels(d.stage).inc()
            self.dead_by_class.labels(d.error_class).inc()

    def serve(self, port: int) -> None:
        start_http_server(port, addr="127.0.0.1", registry=self.registry)
