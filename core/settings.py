"""Every URI, credential and local-stack knob of vidsearch, in one frozen settings object.

Sources, highest priority first: explicit arguments, environment variables (`VIDSEARCH_` prefix,
`__` between nested names, e.g. `VIDSEARCH_KAFKA__BOOTSTRAP_SERVERS`), then a TOML config file
named by `--config` or `VIDSEARCH_CONFIG`. Secrets are `SecretStr`, so printing or dumping the
settings never shows them.

The local stack derives its listening ports from the client URLs below, so there is one place to
change a port and the clients can never point somewhere the stack did not start.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from vidsearch.core.errors import ConfigError

CONFIG_ENV = "VIDSEARCH_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """Kafka client settings; SASL and SSL options map one-to-one onto librdkafka's."""

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "vidsearch"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    # Which Python client talks to Kafka: the librdkafka binding (default: measured faster, see
    # docs/architecture.md "Kafka clients") or pure-Python kafka-python (no native library).
    client: Literal["confluent", "kafka-python"] = "confluent"
    # Topics the indexer creates at start-up when missing (events, dead letters, copy events);
    # existing topics are never altered. In production: replication 3, min.insync.replicas 2
    # (docs/operations.md); the producers already use acks=all with idempotence.
    create_topics: bool = True
    topic_partitions: int = Field(3, ge=1)
    replication_factor: int = Field(1, ge=1)
    min_insync_replicas: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _isr_within_replicas(self) -> KafkaSettings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(f"kafka.min_insync_replicas ({self.min_insync_replicas}) cannot exceed "
                             f"kafka.replication_factor ({self.replication_factor}): no write could ever be acknowledged")
        return self


class OpenSearchSettings(_Section):
    # One node's URL, or every node's, comma-separated: the client spreads requests over the
    # nodes it knows and retries a request on another one when a node stops answering.
    url: str = "http://127.0.0.1:9200"
    username: str | None = None
    password: SecretStr | None = None
    verify_certs: bool = True
    ca_certs: Path | None = None
    timeout_s: float = 30.0
    # Replicas of each index vidsearch creates (existing indices keep theirs), and how many shard
    # copies must be active before a `_bulk` write proceeds ("1": the primary; "all"; or a number).
    # On a cluster: 1 replica, so a lost data node's primaries are promoted instead of lost.
    number_of_replicas: int = Field(0, ge=0)
    # Primary shards of each index vidsearch creates: 1 suits a catalogue of up to a few million
    # videos on one node; more spread writes (and a lost node's share) over a cluster's nodes.
    number_of_shards: int = Field(1, ge=1, le=64)
    wait_for_active_shards: str = Field("1", pattern=r"^(all|[1-9][0-9]*)$")
    # One `_bulk` request carries at most this many bytes (a batch is split across requests);
    # far under OpenSearch's default http.max_content_length of 100 MB. A single document
    # larger than this is dead-lettered.
    bulk_max_bytes: int = Field(10 * 1024**2, ge=64 * 1024)

    @property
    def urls(self) -> list[str]:
        """Every node named by `url`, in order (the local stack listens on the first)."""
        return [u.strip() for u in self.url.split(",") if u.strip()]


class MilvusSettings(_Section):
    """`uri` is either a server (`http://host:port`) or a local milvus-lite file (`./x.db`)."""

    uri: str = "http://127.0.0.1:19530"
    token: SecretStr | None = None
    db_name: str = "default"
    # pymilvus pings every 10 s even on idle channels; a stock gRPC server (milvus-lite's) allows
    # one ping per 5 min without data and answers more with GOAWAY "too many pings", which breaks
    # the shared channel. 5 min keeps both Milvus and milvus-lite happy; lower it for a proxy
    # that drops idle connections sooner.
    keepalive_ms: int = 300_000
    # Embedded catalogues are served by a private milvus-lite server shared by every process
    # (plugins/milvus/lite.py); it exits this long after its last client process ended.
    lite_idle_s: float = Field(300.0, ge=1)


class RedisSettings(_Section):
    url: str = "redis://127.0.0.1:6379/0"
    password: SecretStr | None = None


class MediaSettings(_Section):
    """Limits on untrusted media and how keyframes are chosen (DESIGN.md section 2)."""

    max_file_bytes: int = 2 * 1024**3
    max_duration_s: float = 4 * 3600.0
    max_width: int = 4096
    max_height: int = 4096
    max_decode_s: float = 300.0
    keyframe_min: int = 3
    keyframe_max: int = 16
    keyframe_sample_s: float = 0.5
    keyframe_max_candidates: int = 240
    scene_threshold: float = 0.06
    scene_relative: float = 2.0
    frame_max_side: int = 640
    # Demuxers FFmpeg may pick (by content, never by file name); anything else is refused before
    # its header is read. Playlists (hls), concat scripts, image sequences, lavfi, tee and data
    # are never allowed, whatever this says: they make FFmpeg open other files.
    container_formats: tuple[str, ...] = (
        "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "mpegts", "avi", "flv", "ogg", "wav", "mp3")
    thumbnail_max_decode_s: float = Field(5.0, gt=0)  # the API decodes one frame per request


class EncoderSettings(_Section):
    """Which encoders run and their CPU budget (2 cores: one intra-op thread pool of 2)."""

    text_model: Literal["minilm", "e5"] = "minilm"
    # The vision backbone: Lite2 sees more (ImageNet top-1 77.6 against 75.1) at about 3x the cost
    # per frame (`vidsearch bench encode`). Its features have their own version id; copy search
    # needs a whitening fitted on it (`vidsearch train-fingerprint`, then copies.whitening).
    vision_model: Literal["efficientnet-lite0", "efficientnet-lite2"] = "efficientnet-lite0"
    threads: int = 2
    batch_size: int = 32
    bridge_top_k: int = 5
    # The per-keyframe bridge into the text space: "imagenet" weighs the text vectors of the
    # backbone's top ImageNet classes; "pretrained" runs the trained head (`vidsearch pretrain`) on
    # the pooled features; "joined" mixes both per keyframe (weight `bridge_join_weight`, empty takes
    # the one `vidsearch pretrain --join-data` chose on validation and wrote into the head's card).
    # `bridge_head` names a head file; empty takes the one shipped in the package.
    bridge: Literal["imagenet", "pretrained", "joined"] = "imagenet"
    bridge_head: Path | None = None
    bridge_join_weight: float | None = Field(None, ge=0, le=1)
    asr: bool = True
    asr_beam_size: int = 5
    ocr: bool = True
    ocr_min_score: float = 0.5
    # Text-presence gate: the OCR detector first looks at the keyframe shrunk to this short side and
    # only frames where it finds text get the full pass (0 = no gate). `vidsearch bench ocr` chose it.
    ocr_gate_side: int = Field(320, ge=0)
    ocr_gate_box_thresh: float = Field(0.3, gt=0, lt=1)
    backend: Literal["torch", "onnx"] = "torch"
    # The ONNX text graph (`bench text-graphs` judges them by the ranking users see):
    # "fp32" reproduces torch; "int8" (dynamic, per-channel) is ~2.2x faster but moves the ranking
    # (top-10 overlap with torch ~0.90 on Tux Paint validation); "int8_smooth" (smoothed, with the
    # most quantisation-sensitive MatMuls kept float, calibrated on the package's shipped
    # calibration) is ~1.6x faster at top-10 overlap ~0.96. Each has its own version id.
    onnx_text_graph: Literal["fp32", "int8", "int8_smooth"] = "fp32"

    @model_validator(mode="before")
    @classmethod
    def _legacy_int8(cls, data: Any) -> Any:
        """`onnx_text_int8 = true` (the older boolean) still selects the int8 graph."""
        if isinstance(data, dict) and "onnx_text_int8" in data:
            data = dict(data)
            legacy = data.pop("onnx_text_int8")
            if str(legacy).lower() in ("1", "true", "yes", "on") and "onnx_text_graph" not in data:
                data["onnx_text_graph"] = "int8"
        return data


class MediaPolicySettings(_Section):
    """Which media URIs an event may name. Local paths only under `roots` (symlinks resolved);
    http(s) only when enabled, to allow-listed hosts, never to private or loopback addresses
    unless explicitly allowed (SSRF protection)."""

    roots: tuple[Path, ...] = ()
    allow_http: bool = False
    http_hosts: tuple[str, ...] = ()
    http_max_bytes: int = 512 * 1024**2
    http_timeout_s: float = 60.0  # per connect / read / write
    http_total_timeout_s: float = Field(600.0, gt=0)  # the whole download, headers to last byte
    allow_private_networks: bool = False
    download_dir: Path | None = None


class EventLimitSettings(_Section):
    """Bounds on what one untrusted event may make the indexer parse, allocate, store or
    dead-letter. String fields are also bounded in UTF-8 bytes by the schema itself, to the
    stores' column limits (see connector/events.py)."""

    extra_max_depth: int = Field(8, ge=1)  # nesting of pass-through (unknown) fields
    extra_max_bytes: int = Field(64 * 1024, ge=2)  # all pass-through fields, as compact JSON
    extra_max_keys: int = Field(256, ge=0)  # object keys, counted through every level
    extra_key_max_chars: int = Field(128, ge=1)
    features_max_bytes: int = Field(64 * 1024**2, ge=1024)  # a features record, inflated, in all
    features_max_array_bytes: int = Field(32 * 1024**2, ge=1024)  # one array of it
    features_max_meta_bytes: int = Field(8 * 1024**2, ge=1024)  # its JSON metadata
    features_max_keyframes: int = Field(1024, ge=1)
    dlq_max_bytes: int = Field(900_000, ge=16 * 1024)  # one DLQ record; Kafka's default broker limit is ~1 MB


class IndexerSettings(_Section):
    """The streaming indexer: topics, batching, stores and where base features are kept."""

    topic: str = "videos"
    dlq_topic: str = "videos.dlq"
    group_id: str = "vidsearch-indexer"
    batch_max_events: int = 256
    batch_max_s: float = 1.0
    # Batches between poll and commit, each in its own stage (decode, embed, build, write): 4
    # overlaps every stage; 1 runs them one after the other. Memory holds at most this many batches.
    pipeline_depth: int = Field(4, ge=1, le=16)
    max_event_bytes: int = 16 * 1024**2
    model_version: str = "default-v1"
    write_versions: tuple[str, ...] = ()
    # Registered backend names (vidsearch.plugins.backends); an unknown one fails at start-up.
    sinks: tuple[str, ...] = ("milvus", "opensearch")
    index_prefix: str = "vidsearch-videos"
    collection_prefix: str = "vidsearch_videos"
    feature_store: Path | None = None
    # Follow the model registry (Redis): write to its current version plus any re-embed target,
    # embedding with the current version's model. Off: the static model_version/write_versions.
    use_registry: bool = False
    retry_attempts: int = 4
    retry_max_wait_s: float = 2.0
    unavailable_backoff_s: float = 2.0
    # Kafka evicts a member that does not poll for this long; the runner keeps polling (paused)
    # during long batches and outages, so this bounds nothing but a hung process.
    max_poll_interval_ms: int = 300_000
    metrics_port: int | None = None
    status_interval_s: float = 2.0
    media_policy: MediaPolicySettings = MediaPolicySettings()
    limits: EventLimitSettings = EventLimitSettings()


class RetrievalSettings(_Section):
    """The hybrid retriever (`vidsearch search`, the HTTP API). Stores are "opensearch" or
    "milvus"; the embedded default (a milvus-lite file URI) serves both roles from Milvus."""

    lexical_store: str | None = None  # a backend name; None: the registry's default for this deployment
    dense_store: str | None = None
    fallback: bool = True  # re-try a route on the other store when its store is down
    overfetch: int = Field(5, ge=1, le=50)
    min_candidates: int = Field(50, ge=1, le=2000)
    model_dir: Path | None = None  # a `vidsearch train` folder; None: the default (text-space) fusion
    query_log: Path | None = None  # default: <state_dir>/query_log.f32
    # The learned gate of `dynamic_margin` (a `vidsearch train-fusion` JSON file). None: the gate
    # saved beside `model_dir` when there is one, else the gate that ships with the package.
    fusion_model: Path | None = None
    ncl_bank_size: int = Field(2000, ge=10)
    ncl_tau: float = Field(0.05, gt=0)
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    # HTTP API hardening (see ops/api/security.py). Host allow-list: None means the bound host,
    # localhost, 127.0.0.1 and [::1] (stops DNS rebinding); a "*" entry turns the check off.
    api_allowed_hosts: tuple[str, ...] | None = None
    api_token: SecretStr | None = None  # None: no auth, and then only a loopback bind is allowed...
    api_allow_unauthenticated_remote: bool = False  # ...unless this is set
    api_cors_origins: tuple[str, ...] = ()  # empty: no CORS headers at all
    api_max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024**2)
    log_queries: bool = False  # append served queries to the query log (NCL bank): opt-in
    expose_media_paths: bool = False  # hits keep their stored media_uri instead of the API's media URL


class ReembedSettings(_Section):
    """Re-embedding after retraining (Celery) and the periodic tasks (Celery beat)."""

    queue: str = "vidsearch"  # the Celery queue re-embedding tasks are sent to
    chunks: int = Field(8, ge=1, le=1024)  # sliced-scroll slices = chord members
    batch_size: int = Field(256, ge=1)
    min_overlap: float = Field(0.2, ge=0, le=1.01)  # validation gate: mean top-10 overlap old vs new
    # Videos that cannot be re-embedded (corrupt features, bad media) are skipped and reported;
    # the gate still swaps when at most this fraction of the catalogue was skipped.
    max_failed_fraction: float = Field(0.01, ge=0, le=1)
    gate_queries: int = Field(20, ge=0)
    retention_s: float = Field(7 * 24 * 3600.0, ge=0)  # the old version stays this long for rollback
    visibility_timeout_s: float = Field(3600.0, ge=5)  # a killed worker's chunk is redelivered after this
    ncl_interval_s: float = Field(3600.0, ge=10)
    consistency_interval_s: float = Field(24 * 3600.0, ge=10)
    cleanup_interval_s: float = Field(3600.0, ge=10)


class CopySettings(_Section):
    """Same-source (copy) search: keyframe fingerprints in a frame index beside the video stores."""

    enabled: bool = True  # the indexer writes frame fingerprints with every video
    store: str = "milvus"  # a registered frame-index backend (vidsearch.plugins.backends.FRAME_BACKENDS)
    collection_prefix: str | None = None  # None: `<indexer.collection_prefix>__frames`, beside the videos
    whitening: Path | None = None  # a fingerprint whitening .npz; None: the one in the package
    method: Literal["tn", "dp"] = "tn"
    k: int = Field(16, ge=1, le=1024)  # nearest catalogue keyframes per query keyframe
    # Chosen on the copy benchmark's validation split (`vidsearch eval --copies --split val`,
    # the best segment F1 + video mAP with at most 2% false matches): similarities are normalised
    # by each query keyframe's similarity to its `background_rank`-th nearest catalogue video
    # (times `background`), so the thresholds below are margins over that, not raw cosines.
    background: float = Field(1.0, ge=0, le=2)
    background_rank: int = Field(3, ge=1, le=100)
    vote_sim: float = Field(0.1, ge=-2, le=2)
    candidates: int = Field(10, ge=1, le=1000)
    min_score: float = Field(0.0, ge=-2, le=2)
    min_segment_score: float = Field(0.0, ge=-2, le=2)  # a run's mean (normalised) similarity
    min_sim: float = Field(0.1, ge=-2, le=2)  # a keyframe pair weaker than this is no match
    single_sim: float = Field(0.45, ge=-2, le=2)  # a one-keyframe segment needs this
    # Tag each incoming video with the catalogue videos it shares footage with (`copies` field)
    # and publish a copy event; costs one copy search per video at ingest.
    check_at_ingest: bool = False
    topic: str = "videos.copies"
    upload_max_bytes: int = Field(256 * 1024**2, ge=1024)  # POST /copies uploads


def _default_dir(kind: Literal["state", "cache"]) -> Path:
    """Root keeps service data under /var (FHS, and readable by the unprivileged service user
    OpenSearch must run as); everyone else uses the XDG folders of their home."""
    if os.geteuid() == 0:
        return Path("/var/lib/vidsearch" if kind == "state" else "/var/cache/vidsearch")
    if kind == "state":
        return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local/state")) / "vidsearch"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vidsearch"


class StackSettings(_Section):
    """The local development/test stack (`vidsearch stack ...`). Ports come from the client URLs."""

    state_dir: Path = Field(default_factory=lambda: _default_dir("state"))
    cache_dir: Path = Field(default_factory=lambda: _default_dir("cache"))
    maven_repo: Path = Field(default_factory=lambda: Path.home() / ".m2" / "repository")
    services: tuple[Literal["kafka", "opensearch", "redis", "milvus"], ...] = (
        "kafka",
        "opensearch",
        "redis",
        "milvus",
    )
    # How many nodes `stack up` starts (its --kafka-brokers / --opensearch-nodes override these).
    # Node k (from 1) listens on the first node's ports plus an offset: Kafka's broker and
    # controller ports + 2(k-1), OpenSearch's HTTP and transport ports + (k-1).
    kafka_brokers: int = Field(1, ge=1, le=9)
    opensearch_nodes: int = Field(1, ge=1, le=9)
    kafka_version: str = "4.1.1"
    kafka_controller_port: int = 9093
    kafka_heap: str = "512m"
    kafka_java_home: Path | None = None
    opensearch_version: str = "3.5.0"
    opensearch_plugins: tuple[str, ...] = ("opensearch-knn", "neural-search")
    opensearch_required_plugins: tuple[str, ...] = ("opensearch-knn",)
    opensearch_transport_port: int = 9300
    opensearch_heap: str = "1g"
    opensearch_java_home: Path | None = Field(
        default_factory=lambda: Path(p) if (p := os.environ.get("OPENSEARCH_JAVA_HOME")) else None
    )
    service_user: str = "vidsearch"
    redis_server: str = "redis-server"
    start_timeout_s: float = 240.0
    stop_timeout_s: float = 30.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VIDSEARCH_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    kafka: KafkaSettings = KafkaSettings()
    opensearch: OpenSearchSettings = OpenSearchSettings()
    milvus: MilvusSettings = MilvusSettings()
    redis: RedisSettings = RedisSettings()
    stack: StackSettings = Field(default_factory=StackSettings)
    media: MediaSettings = MediaSettings()
    encoders: EncoderSettings = EncoderSettings()
    indexer: IndexerSettings = IndexerSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    reembed: ReembedSettings = ReembedSettings()
    copies: CopySettings = CopySettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def public_dict(self) -> dict[str, Any]:
        """JSON-ready view with every secret masked: SecretStr dumps as '**********', and a
        password written into any URL-valued string (`redis://:pw@host`) becomes '***'."""
        return mask_url_credentials(self.model_dump(mode="json"))


_SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "secret", "token", "key", "auth")


def _mask_url(text: str) -> str:
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:  # malformed (e.g. a bad IPv6 host): still mask a user:password@ part
        return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", text)
    userinfo, at, host = parts.netloc.rpartition("@")
    netloc = f"{userinfo.split(':', 1)[0]}:***@{host}" if at and ":" in userinfo else parts.netloc
    pairs = [p.partition("=") for p in parts.query.split("&")] if parts.query else []
    query = "&".join(k + eq + ("***" if eq and any(w in k.lower() for w in _SECRET_QUERY_KEYS) else v)
                     for k, eq, v in pairs)
    if (netloc, query) == (parts.netloc, parts.query):
        return text
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_url_credentials(value: Any) -> Any:
    """Mask the password of every URL-shaped string in a JSON-ready structure (userinfo and
    secret-named query parameters), so `config show` never prints a credential a URL carries."""
    if isinstance(value, dict):
        return {k: mask_url_credentials(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_url_credentials(v) for v in value]
    return _mask_url(value) if isinstance(value, str) else value


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from overrides, the environment and the TOML file (`config_file` or
    `$VIDSEARCH_CONFIG`). A named file that does not exist is an error, not a silent default."""
    path = config_file or os.environ.get(CONFIG_ENV)
    if not path:
        try:
            return Settings(**overrides)
        except ValueError as exc:  # a bad VIDSEARCH_* variable: a deployment error, not a crash
            raise ConfigError(f"invalid settings (environment or arguments): {exc}") from exc
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    # pydantic-settings reads the TOML path from model_config; a throwaway subclass carries it
    # so concurrent loads with different files never share state.
    bound = type("Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": path}})
    try:
        return bound(**overrides)
    except ValueError as exc:  # pydantic.ValidationError and TOML decode errors
        raise ConfigError(f"invalid config in {path}: {exc}") from exc
