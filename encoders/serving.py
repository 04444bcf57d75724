"""The text encoder a serving process (indexer, API, re-embedding gate) uses, chosen by settings."""

from __future__ import annotations

from vidsearch.core.settings import Settings


def load_text_encoder(settings: Settings):  # -> TextEncoder
    """onnxruntime when configured (no torch at serving time), else sentence-transformers."""
    cfg = settings.encoders
    if cfg.backend == "onnx":
        from vidsearch.encoders.onnx.serve import load_onnx_encoders

        return load_onnx_encoders(settings)[0]
    from vidsearch.encoders.text import load_text_encoder as load

    return load(cfg.text_model, cfg.threads, cfg.batch_size)


def load_vision_encoder(settings: Settings):  # -> VisionEncoder
    """The configured backbone alone (copy search needs no text, speech or OCR models)."""
    cfg = settings.encoders
    if cfg.backend == "onnx":
        from vidsearch.encoders.onnx.serve import load_onnx_encoders

        return load_onnx_encoders(settings)[1]
    from vidsearch.encoders.vision import EfficientNetEncoder

    return EfficientNetEncoder(cfg.threads, cfg.batch_size, cfg.vision_model)
