"""`vidsearch bench encode`: per-stage cost of turning real clips into features, and how much
faster onnxruntime serves the text and vision encoders than torch on the same inputs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.ops.bench.stats import best_seconds

TEXT_BATCH = 32
TEXT_TARGET = 1.5


def _captions(limit: int = 256) -> list[str]:
    """Real English captions (Debian tuxpaint-stamps-default), padded out like video metadata."""
    stamps = Path("/usr/share/tuxpaint/stamps")
    caps = [p.read_text(errors="replace").splitlines()[0].strip() for p in sorted(stamps.rglob("*.txt"))]
    caps = [c for c in caps if c] or ["a short video clip"]
    return [f"{caps[i % len(caps)]}. {caps[(i * 7 + 3) % len(caps)]} (clip {i})" for i in range(limit)]


def run(settings: Settings, progress: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    from vidsearch.encoders.extract import STAGES, FeatureExtractor, StageTimer
    from vidsearch.encoders.media.decode import keyframes
    from vidsearch.encoders.onnx.serve import OrtEfficientNetEncoder, OrtMiniLMEncoder, ensure_exported
    from vidsearch.ops.datasets.clips import real_clips

    clips = real_clips(settings.stack.cache_dir)
    extractor = FeatureExtractor.load(settings, backend="torch")
    per_stage: dict[str, list[float]] = {s: [] for s in STAGES}
    per_video: list[float] = []
    asr_ms: dict[str, list[float]] = {"speech": [], "no_speech": []}
    for clip in clips:
        progress(f"encoding {clip.path.name}")
        timer = StageTimer()
        feats = extractor.extract(clip.path, timer=timer)
        for stage, ms in timer.ms.items():
            per_stage[stage].append(ms)
        per_video.append(sum(timer.ms.values()))
        if feats.has_audio and extractor.speech is not None:
            asr_ms["speech" if feats.transcript else "no_speech"].append(timer.ms["asr"])

    progress("onnxruntime vs torch")
    cfg = settings.encoders
    text_fp32, vision_path = ensure_exported(settings, text_graph="fp32")
    text_int8, _ = ensure_exported(settings, text_graph="int8")
    ort_text = OrtMiniLMEncoder(text_fp32, cfg.threads, TEXT_BATCH)
    ort_int8 = OrtMiniLMEncoder(text_int8, cfg.threads, TEXT_BATCH, int8=True)
    ort_vision = OrtEfficientNetEncoder(vision_path, cfg.threads, cfg.batch_size, cfg.vision_model)
    texts = _captions()
    frames = [k.rgb for clip in clips for k in keyframes(clip.path, settings.media)]

    torch_text = best_seconds(lambda: extractor.text.encode(texts))
    ort_text_s = best_seconds(lambda: ort_text.encode(texts))
    int8_s = best_seconds(lambda: ort_int8.encode(texts))
    torch_vision = best_seconds(lambda: extractor.vision.encode(frames))
    ort_vision_s = best_seconds(lambda: ort_vision.encode(frames))
    ref, fp32, q8 = extractor.text.encode(texts), ort_text.encode(texts), ort_int8.encode(texts)
    vis_ref, vis_ort = extractor.vision.encode(frames).features, ort_vision.encode(frames).features
    backbones = _backbones(settings, frames, progress)

    stages = {
        s: {"p50_ms": round(float(np.median(v)), 1), "total_ms": round(float(np.sum(v)), 1)} for s, v in per_stage.items()
    }
    return {
        "videos": len(clips),
        "sources": sorted({c.source for c in clips}),
        "stages": stages,
        "per_video_ms": {"p50": round(float(np.median(per_video)), 1), "total": round(float(np.sum(per_video)), 1)},
        # Whisper decodes only what its VAD calls speech; the audio vector (one encoder pass over
        # the first 30 s) is paid by every clip with sound.
        "asr": {kind: {"clips": len(ms), "p50_ms": round(float(np.median(ms)), 1) if ms else None,
                       "total_ms": round(float(np.sum(ms)), 1)} for kind, ms in asr_ms.items()},
        "text_batch": TEXT_BATCH,
        "texts": len(texts),
        "frames": len(frames),
        "torch_text_per_s": round(len(texts) / torch_text, 1),
        "ort_text_per_s": round(len(texts) / ort_text_s, 1),
        "ort_speedup_text": round(torch_text / ort_text_s, 3),
        "ort_speedup_text_int8": round(torch_text / int8_s, 3),
        "ort_speedup_vision": round(torch_vision / ort_vision_s, 3),
        "parity_cosine_min": {
            "text_fp32": round(float((ref * fp32).sum(1).min()), 6),
            "text_int8": round(float((ref * q8).sum(1).min()), 6),
            "vision": round(float((vis_ref * vis_ort).sum(1).min()), 6),
        },
        "target": {"ort_speedup_text": TEXT_TARGET, "met": torch_text / ort_text_s >= TEXT_TARGET},
        "vision_backbones": backbones,
    }


def _backbones(settings: Settings, frames: list[np.ndarray], progress: Callable[[str], None]) -> dict[str, Any]:
    """Every packaged backbone on the same keyframes, torch, same threads: what a stronger
    backbone costs per frame (its quality is `vidsearch eval` with `encoders.vision_model`)."""
    from vidsearch.encoders.vision import BACKBONES, EfficientNetEncoder

    out: dict[str, Any] = {}
    for name in BACKBONES:
        progress(f"backbone {name}")
        enc = EfficientNetEncoder(settings.encoders.threads, settings.encoders.batch_size, name)
        secs = best_seconds(functools.partial(enc.encode, frames))
        out[name] = {"input_size": enc.input_size, "ms_per_frame": round(1000 * secs / max(len(frames), 1), 2), "version": enc.version}
    return out
