"""Media file -> `VideoFeatures`: decode once (keyframes and shots), run each modality's encoder,
time every stage.

Encoders are loaded once per process and shared (they are the expensive part); the stage timings
feed `vidsearch bench encode` and the ingestion metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.encoders.bridges import Bridge, load_bridge
from vidsearch.encoders.errors import NoAudioStreamError
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.media.decode import audio_16k, frames_and_shots, probe
from vidsearch.encoders.ocr import RapidOcrReader
from vidsearch.encoders.speech import WhisperSpeech
from vidsearch.encoders.text import TextEncoder, load_text_encoder
from vidsearch.encoders.vision import VisionEncoder, top_classes

STAGES = ("decode", "asr", "ocr", "vision", "text")


@dataclass
class StageTimer:
    ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] += (time.perf_counter() - t0) * 1000


class FeatureExtractor:
    def __init__(
        self,
        settings: Settings,
        text: TextEncoder,
        vision: VisionEncoder,
        bridge: Bridge,
        speech: WhisperSpeech | None,
        ocr: RapidOcrReader | None,
    ) -> None:
        self.settings = settings
        self.text, self.vision, self.bridge, self.speech, self.ocr = text, vision, bridge, speech, ocr

    @classmethod
    def load(cls, settings: Settings, backend: str | None = None) -> FeatureExtractor:
        """Load every encoder once (seconds); `backend` "onnx" serves text and vision via onnxruntime."""
        cfg = settings.encoders
        backend = backend or cfg.backend
        text: TextEncoder
        vision: VisionEncoder
        if backend == "onnx":
            from vidsearch.encoders.onnx.serve import load_onnx_encoders

            text, vision = load_onnx_encoders(settings)
        else:
            from vidsearch.encoders.vision import EfficientNetEncoder

            text = load_text_encoder(cfg.text_model, cfg.threads, cfg.batch_size)
            vision = EfficientNetEncoder(cfg.threads, cfg.batch_size, cfg.vision_model)
        bridge = load_bridge(settings, text, vision.version)
        speech = WhisperSpeech(cfg.threads, cfg.asr_beam_size) if cfg.asr else None
        ocr = RapidOcrReader(cfg.ocr_min_score, cfg.ocr_gate_side, cfg.ocr_gate_box_thresh) if cfg.ocr else None
        return cls(settings, text, vision, bridge, speech, ocr)

    def versions(self) -> dict[str, str]:
        out = {"text": self.text.version, "vision": self.vision.version, "bridge": self.bridge.version}
        if self.speech:
            out["asr"] = self.speech.version
        if self.ocr:
            out["ocr"] = self.ocr.version
        return out

    def extract(
        self,
        path: str | Path,
        video_id: str | None = None,
        title: str = "",
        description: str = "",
        tags: list[str] | None = None,
        timer: StageTimer | None = None,
    ) -> VideoFeatures:
        timer = timer or StageTimer()
        media = self.settings.media
        with timer.stage("decode"):
            info = probe(path, media)
            selection = frames_and_shots(path, media, info)
            frames = selection.keyframes
            try:
                audio = audio_16k(path, media, info) if info.has_audio else None
            except NoAudioStreamError:
                audio = None
        feats = VideoFeatures(
            video_id=video_id or Path(path).stem,
            source=str(path),
            duration_s=info.duration_s,
            title=title,
            description=description,
            tags=list(tags or []),
            has_audio=audio is not None,
            keyframe_times=np.array([k.t for k in frames], np.float32),
            shots=selection.shots,
            encoder_versions=self.versions(),
        )
        if audio is not None and self.speech is not None:
            with timer.stage("asr"):
                feats.transcript = self.speech.transcribe(audio)
                feats.audio_vector = self.speech.embed(audio)
        if self.ocr is not None:
            with timer.stage("ocr"):
                feats.ocr = self.ocr.read_frames([(k.t, k.rgb) for k in frames])
        with timer.stage("vision"):
            out = self.vision.encode([k.rgb for k in frames])
            feats.frame_features = out.features
            idx, probs = top_classes(out.logits, self.settings.encoders.bridge_top_k)
            feats.frame_top_classes, feats.frame_top_probs = idx.astype(np.int16), probs.astype(np.float32)
            feats.frame_bridge = self.bridge.from_vision(out.features, out.logits)
        with timer.stage("text"):
            vecs = self.text.encode([feats.metadata_text, feats.transcript_text, feats.ocr_text])
            feats.text_metadata, feats.text_transcript, feats.text_ocr = vecs
        return feats

    def reencode_text(self, feats: VideoFeatures) -> VideoFeatures:
        return in_text_space(feats, self.text, self.bridge)


def in_text_space(feats: VideoFeatures, text: TextEncoder, bridge: Bridge) -> VideoFeatures:
    """The record with its text vectors and bridge in `text`'s space, from what it stores (texts
    and top classes), so a changed text encoder needs no media. Unchanged when it is there already."""
    if feats.encoder_versions.get("text") == text.version and feats.encoder_versions.get("bridge") == bridge.version:
        return feats
    vecs = text.encode([feats.metadata_text, feats.transcript_text, feats.ocr_text])
    return replace(feats, text_metadata=vecs[0], text_transcript=vecs[1], text_ocr=vecs[2],
                   frame_bridge=bridge.from_record(feats),
                   encoder_versions={**feats.encoder_versions, "text": text.version, "bridge": bridge.version})
