"""`vidsearch bench ingest`: what the pipeline (Kafka + both sinks + commits) costs on top of the
encoders, measured on the same events in the same run, once per Kafka client.

encoder_only_eps: the pipeline's encode step alone (parse, validate, features, text encoder,
documents) over the events in memory, batch by batch as the consumer would.
pipeline_eps: the same events produced to a fresh topic and consumed by the real indexer into
OpenSearch and Milvus, from its first poll to its last commit.
overhead = encoder_only_eps / pipeline_eps - 1.

The indexer runs its stages (decode, embed, build, write) on threads of their own, up to
`indexer.pipeline_depth` batches in flight; `pipeline_decode_s`, `pipeline_embed_s`,
`pipeline_build_s` and `pipeline_sink_s` are each stage's busy time, so they overlap and may add up to more than
`pipeline_active_s`. `cpu` says what the run cost the machine: the indexer's CPU seconds and
each local service's (`vidsearch stack`), and `floor_overhead`, the overhead the run would have
if all of that CPU were packed onto the cores with no waiting at all. Where the services share
the cores with the indexer, overhead cannot fall below that floor, however the stages overlap.

Each case reports these figures at its top level for the configured client (`kafka.client`,
the shape older reports had) and under `clients` for every client measured, each run on its
own topic, indices and collections. `kafka_only` isolates the clients themselves: the
precomputed events produced (acks=all, until flushed) and consumed by the indexer's source
(poll, then commit per batch) with no stores, which is where the two clients differ.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import psutil

from vidsearch.core.settings import Settings

CLIENTS = ("confluent", "kafka-python")
_SHORT = {"confluent": "cf", "kafka-python": "kp"}


def _for_client(settings: Settings, client: str, tag: str) -> Settings:
    idx = settings.indexer.model_copy(update={
        "topic": tag, "dlq_topic": f"{tag}.dlq", "group_id": f"{tag}-g", "index_prefix": tag.replace("_", "-"),
        "collection_prefix": tag, "feature_store": settings.stack.state_dir / "bench-features" / tag,
    })
    return settings.model_copy(update={"indexer": idx, "kafka": settings.kafka.model_copy(update={"client": client})})


def _create_topics(s: Settings) -> list[str]:
    from confluent_kafka.admin import AdminClient, NewTopic

    from vidsearch.connector.kafka.config import kafka_client_config

    topics = [s.indexer.topic, s.indexer.dlq_topic]
    admin = AdminClient(kafka_client_config(s.kafka))
    for fut in admin.create_topics([NewTopic(t, num_partitions=3, replication_factor=1) for t in topics]).values():
        fut.result(timeout=30)
    return topics


def _delete_topics(s: Settings, topics: list[str]) -> None:
    from confluent_kafka.admin import AdminClient

    from vidsearch.connector.kafka.config import kafka_client_config

    admin = AdminClient(kafka_client_config(s.kafka))  # kept alive until the futures resolve
    for fut in admin.delete_topics(topics).values():
        fut.result(timeout=30)


def _produce(s: Settings, payloads: Iterable[tuple[str, bytes]]) -> float:
    """Seconds to produce every payload and have Kafka acknowledge it (acks=all)."""
    from vidsearch.connector.kafka.producer import make_producer

    producer = make_producer(s.kafka, linger_ms=20)
    producer.produce(s.indexer.dlq_topic, b"warm-up", b"")  # connect first: confluent connects lazily
    producer.flush(30)
    t0 = time.perf_counter()
    for vid, p in payloads:
        producer.produce(s.indexer.topic, vid.encode(), p)
    failures = producer.flush(120)
    elapsed = time.perf_counter() - t0
    producer.close()
    if failures:
        raise RuntimeError(f"benchmark events not acknowledged by Kafka: {failures[:3]}")
    return elapsed


def _kafka_only(settings: Settings, client: str, payloads: list[tuple[str, bytes]], progress: Callable[[str], None]) -> dict[str, Any]:
    from vidsearch.connector.sources.kafka import KafkaSource

    s = _for_client(settings, client, f"bench_kafka_{_SHORT[client]}_{uuid.uuid4().hex[:6]}")
    progress(f"kafka only: {client}")
    topics = _create_topics(s)
    try:
        produce_s = _produce(s, payloads)
        source = KafkaSource(s)
        got, first, last, t_join = 0, None, 0.0, time.monotonic()
        try:
            while got < len(payloads) and time.monotonic() - t_join < 120:
                t_poll = time.perf_counter()
                # never ask for more than is left: the last poll would wait out batch_max_s
                batch = source.poll(min(s.indexer.batch_max_events, len(payloads) - got), s.indexer.batch_max_s)
                if not batch:
                    continue
                first = t_poll if first is None else first
                source.commit(batch)
                got += len(batch)
                last = time.perf_counter()
        finally:
            source.close()
    finally:
        _delete_topics(s, topics)
    n = len(payloads)
    consume_s = last - first if first is not None else float("nan")
    return {"events": n, "consumed": got, "mb": round(sum(len(p) for _, p in payloads) / 1e6, 2),
            "produce_eps": round(n / produce_s, 1), "consume_commit_eps": round(got / consume_s, 1) if consume_s > 0 else None}


def _drop_catalogue(pipeline: Any) -> None:
    """Remove what the run wrote, in every store (alias and every write version)."""
    writer = pipeline.writer
    for store in writer.stores:
        store.drop_alias()
        for version in writer.versions():
            store.drop(version)
    if writer.frames is not None:
        writer.frames.store.drop()
    writer.close()


class CpuMeter:
    """CPU seconds the indexer (this process) and each local service used since it was made.
    On a machine where the services share the cores with the indexer, their CPU is time the
    encoders cannot have: `floor_active_s` (all of it over the cores) is the shortest run the
    machine allows, so an overhead near `floor_overhead` means the pipeline is bound by CPU,
    not by waiting. Services not run by `vidsearch stack` (remote ones) are not counted."""

    def __init__(self, settings: Settings) -> None:
        from vidsearch.ops.stack.manager import Stack

        self.stack = Stack(settings)
        self.me = psutil.Process()
        self.t0 = time.monotonic()
        self.services0 = self.stack.cpu_seconds()
        self.me0 = self._mine()

    def _mine(self) -> float:
        t = self.me.cpu_times()
        return t.user + t.system

    def used(self) -> dict[str, Any]:
        services = {k: round(v - self.services0.get(k, 0.0), 2) for k, v in self.stack.cpu_seconds().items()}
        indexer = self._mine() - self.me0
        cores = psutil.cpu_count() or 1
        return {"cores": cores, "wall_s": round(time.monotonic() - self.t0, 2), "indexer_s": round(indexer, 2),
                "services_s": services, "floor_active_s": round((indexer + sum(services.values())) / cores, 2)}


class PeakMemory:
    """Highest resident memory of the indexer (this process and its children) and of each local
    service, sampled twice a second while the run lasts (a thread: the run itself blocks)."""

    def __init__(self, settings: Settings, every_s: float = 0.5) -> None:
        from vidsearch.ops.stack.manager import Stack

        self.stack, self.every_s = Stack(settings), every_s
        self.me = psutil.Process()
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-memory", daemon=True)

    def _sample(self) -> None:
        try:
            mine = sum(p.memory_info().rss for p in [self.me, *self.me.children(recursive=True)])
        except psutil.Error:
            mine = 0
        now = {"indexer": mine} | {n: self.stack.process(n).rss_bytes() for n, svc in self.stack.services.items() if svc.ports()}
        for k, v in now.items():
            if not v:
                continue  # a service not run by this stack (remote, or another state folder)
            self.peak[k] = max(self.peak.get(k, 0), v)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def mb(self) -> dict[str, float]:
        return {k: round(v / 2**20, 1) for k, v in self.peak.items()}


class Events(Protocol):
    """What a run consumes: a list of (key, payload), or events made on the fly."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[tuple[str, bytes]]: ...


class SyntheticEvents:
    """`n` precomputed-feature events made on the fly: 100k of them are ~3 GB, which a list would
    hold in the indexer's own memory and so in its measured footprint."""

    def __init__(self, n: int, prefix: str = "p") -> None:
        self.n, self.prefix = n, prefix

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        from vidsearch.ops.bench import events as ev

        return ((f"{self.prefix}{i}", ev.upsert(f"{self.prefix}{i}", 1, seed=i)) for i in range(self.n))


def _pipeline(settings: Settings, name: str, client: str, payloads: Events, text, progress: Callable[[str], None],
              encoder_s: list[float] | None = None) -> dict[str, Any]:
    """The full indexer over `payloads` with `client`; when `encoder_s` is given (an empty
    list), first time the encode step alone into it, on the same pipeline."""
    from vidsearch.connector.app import build_pipeline, build_runner, make_writer
    from vidsearch.connector.messages import Message
    from vidsearch.connector.sources.kafka import KafkaSource
    from vidsearch.ops.stack.manager import Stack

    s = _for_client(settings, client, f"bench_{name}_{_SHORT[client]}_{uuid.uuid4().hex[:6]}")
    pipeline = build_pipeline(s, make_writer(s), text=text)
    if encoder_s is not None:
        progress(f"{name}: encoder only")
        batch = s.indexer.batch_max_events
        messages = [Message(s.indexer.topic, 0, i, vid.encode(), p) for i, (vid, p) in enumerate(payloads)]
        t0 = time.perf_counter()
        for start in range(0, len(messages), batch):
            pipeline.encode(messages[start : start + batch])
        encoder_s.append(time.perf_counter() - t0)

    progress(f"{name}: full pipeline ({client})")
    stack = Stack(settings)
    disk0 = stack.disk_bytes()
    topics = _create_topics(s)
    try:
        produce_s = _produce(s, payloads)
        runner = build_runner(s, pipeline, KafkaSource(s))
        cpu = CpuMeter(settings)
        try:
            with PeakMemory(settings) as memory:
                stats = runner.run(until_idle_s=3)
        finally:
            runner.source.close()
        used = cpu.used()
        for store in pipeline.writer.stores:
            store.refresh()
        # what the run added to each service's data folder: Kafka holds the events, the stores
        # the documents and their indexes (as they stood when the run ended)
        disk = {k: v - disk0.get(k, 0) for k, v in stack.disk_bytes().items()}
    finally:
        _delete_topics(s, topics)
        _drop_catalogue(pipeline)
    return {
        "indexed": stats.indexed,
        "dead": stats.dead,
        "pipeline_eps": round(len(payloads) / stats.active_s, 2),
        "pipeline_encode_s": round(stats.encode_s, 3),
        "pipeline_decode_s": round(stats.decode_s, 3),
        "pipeline_embed_s": round(stats.embed_s, 3),
        "pipeline_build_s": round(stats.build_s, 3),
        "pipeline_sink_s": round(stats.sink_s, 3),
        "pipeline_depth": s.indexer.pipeline_depth,
        "pipeline_active_s": round(stats.active_s, 3),
        "produce_eps": round(len(payloads) / produce_s, 1),
        "cpu": used,
        "peak_rss_mb": memory.mb(),
        "disk_added_mb": {k: round(v / 2**20, 1) for k, v in disk.items()},
    }


def _run_case(settings: Settings, name: str, payloads: list[tuple[str, bytes]], text, progress: Callable[[str], None],
              clients: Sequence[str]) -> dict[str, Any]:
    n = len(payloads)
    if not n:
        return {"events": 0}
    encoder: list[float] = []
    per_client: dict[str, dict[str, Any]] = {}
    for i, client in enumerate(clients):  # the configured client first: it also times the encoders
        per_client[client] = _pipeline(settings, name, client, payloads, text, progress, encoder if i == 0 else None)
    encoder_eps = n / encoder[0]
    for fig in per_client.values():
        fig["overhead"] = round(encoder_eps / fig["pipeline_eps"] - 1, 4)
        floor = fig["cpu"]["floor_active_s"]
        fig["cpu"]["floor_overhead"] = round(encoder_eps / (n / floor) - 1, 4) if floor > 0 else None
    main = per_client[clients[0]]
    return {
        "events": n,
        "indexed": main["indexed"],
        "dead": main["dead"],
        "encoder_only_eps": round(encoder_eps, 2),
        "pipeline_eps": main["pipeline_eps"],
        "overhead": main["overhead"],
        "pipeline_encode_s": main["pipeline_encode_s"],
        "pipeline_decode_s": main["pipeline_decode_s"],
        "pipeline_embed_s": main["pipeline_embed_s"],
        "pipeline_build_s": main["pipeline_build_s"],
        "pipeline_sink_s": main["pipeline_sink_s"],
        "pipeline_depth": main["pipeline_depth"],
        "cpu": main["cpu"],
        "peak_rss_mb": main["peak_rss_mb"],
        "disk_added_mb": main["disk_added_mb"],
        "pipeline_active_s": main["pipeline_active_s"],
        "kafka_client": clients[0],
        "clients": per_client,
    }


def _scale(settings: Settings, sizes: Sequence[int], client: str, text, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """The full pipeline at each catalogue size (first client only, no encoder-only pass: the
    sizes are each other's baseline), with peak memory and the disk each service took, also per
    100k videos."""
    rows = []
    for n in sizes:
        fig = _pipeline(settings, f"scale{n}", client, SyntheticEvents(n, prefix=f"s{n}-"), text, progress)
        per_100k = {k: round(v * 100_000 / n, 1) for k, v in fig["disk_added_mb"].items()}
        rows.append({"events": n, "indexed": fig["indexed"], "dead": fig["dead"], "pipeline_eps": fig["pipeline_eps"],
                     "peak_rss_mb": fig["peak_rss_mb"], "disk_added_mb": fig["disk_added_mb"],
                     "disk_mb_per_100k": per_100k, "cpu": fig["cpu"]})
        progress(f"scale {n}: {rows[-1]}")
    if len(rows) > 1:
        rows[-1]["eps_vs_smallest"] = round(rows[-1]["pipeline_eps"] / rows[0]["pipeline_eps"], 3)
    return rows


def run(settings: Settings, n_precomputed: int = 2000, media_rounds: int = 1, progress: Callable[[str], None] = lambda m: None,
        clients: Sequence[str] = CLIENTS, scale: Sequence[int] = ()) -> dict[str, Any]:
    from vidsearch.encoders.serving import load_text_encoder
    from vidsearch.ops.bench import events as ev
    from vidsearch.ops.datasets.clips import real_clips

    unknown = set(clients) - set(CLIENTS)
    if unknown or not clients:
        raise ValueError(f"unknown Kafka clients {sorted(unknown)}; use some of {CLIENTS}")
    # the configured client first: its figures are the case's top-level ones
    ordered = sorted(dict.fromkeys(clients), key=lambda c: c != settings.kafka.client)
    text = load_text_encoder(settings)
    pre = [(f"p{i}", ev.upsert(f"p{i}", 1, seed=i)) for i in range(n_precomputed)]
    clips = real_clips(settings.stack.cache_dir)
    roots = tuple(sorted({c.path.parent for c in clips}))
    media_settings = settings.model_copy(update={"indexer": settings.indexer.model_copy(update={
        "media_policy": settings.indexer.media_policy.model_copy(update={"roots": roots})})})
    media = [(f"m{r}-{i}", ev.upsert(f"m{r}-{i}", 1, features=None, media_uri=str(c.path)))
             for r in range(media_rounds) for i, c in enumerate(clips)]
    return {
        "target_overhead": 0.10,
        "kafka_client": ordered[0],
        "kafka_only": {c: _kafka_only(settings, c, pre, progress) for c in ordered} if pre else {},
        "precomputed": _run_case(settings, "pre", pre, text, progress, ordered),
        "real_media": _run_case(media_settings, "media", media, text, progress, ordered),
        "scale": _scale(settings, scale, ordered[0], text, progress),
    }
