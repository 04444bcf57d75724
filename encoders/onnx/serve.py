"""onnxruntime serving of the exported encoders: same interfaces as the torch ones, no torch.

Tokenisation uses the `tokenizers` library on MiniLM's own tokenizer.json, with the same
truncation (256 tokens) as sentence-transformers, so both paths see identical token ids.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.encoders.errors import MissingExtraError, ModelLoadError
from vidsearch.encoders.onnx.export import onnx_dir
from vidsearch.encoders.text import Kind, _with_empty_rows, minilm_model_dir, minilm_version
from vidsearch.encoders.vision import DEFAULT_BACKBONE, N_CLASSES, VisionOutput, backbone, efficientnet_version, preprocess

MAX_TOKENS = 256


def ort_session(path: Path, threads: int):  # -> onnxruntime.InferenceSession
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingExtraError("onnxruntime") from exc
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist; run `vidsearch encoders export-onnx`")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OrtMiniLMEncoder:
    name = "minilm"
    dim = 384

    def __init__(self, model_path: Path, threads: int = 2, batch_size: int = 32, int8: bool = False) -> None:
        from tokenizers import Tokenizer

        model_dir = minilm_model_dir()
        self.version = minilm_version(int8)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.session = ort_session(model_path, threads)
        self.batch_size = batch_size
        self._lock = threading.Lock()  # the tokenizer is not safe for concurrent use

    def feeds(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The graph's inputs for one batch (also what static quantisation calibrates on)."""
        enc = self.tokenizer.encode_batch(texts)
        return {
            "input_ids": np.array([e.ids for e in enc], np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], np.int64),
        }

    def _run(self, texts: list[str]) -> np.ndarray:
        """Batches of similar length (as sentence-transformers does) waste little on padding."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dim), np.float32)
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self.session.run(["embedding"], self.feeds([texts[i] for i in idx]))[0]
        return out

    def encode(self, texts: Sequence[str], kind: Kind = "passage") -> np.ndarray:
        with self._lock:
            return _with_empty_rows(texts, self.dim, lambda xs: self._run(list(xs)))


class OrtEfficientNetEncoder:
    dim = 1280

    def __init__(self, model_path: Path, threads: int = 2, batch_size: int = 32, name: str = DEFAULT_BACKBONE) -> None:
        self.name = name
        self.input_size = backbone(name).input_size
        self.version = efficientnet_version(name)
        self.session = ort_session(model_path, threads)
        self.batch_size = batch_size

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats, logits = self.session.run(["features", "logits"], {"pixels": batch})
        return feats, logits

    def encode(self, images: Sequence[np.ndarray]) -> VisionOutput:
        from vidsearch.encoders.text import normalize_rows

        if not images:
            return VisionOutput(np.zeros((0, self.dim), np.float32), np.zeros((0, N_CLASSES), np.float32))
        parts = [self.forward(preprocess(images[i : i + self.batch_size], self.input_size)) for i in range(0, len(images), self.batch_size)]
        return VisionOutput(normalize_rows(np.concatenate([p[0] for p in parts])), np.concatenate([p[1] for p in parts]))


def onnx_paths(settings: Settings) -> tuple[Path, Path]:
    """Where the fp32 graphs for the current packaged weights live (named by encoder version)."""
    cache = settings.stack.cache_dir
    return onnx_dir(cache, minilm_version()) / "text.onnx", onnx_dir(cache, efficientnet_version(settings.encoders.vision_model)) / "vision.onnx"


def ensure_exported(settings: Settings, int8_text: bool | None = None) -> tuple[Path, Path]:
    """Export once (torch needed only then); later calls just return the paths. The text path
    is the int8 graph when `int8_text` (default: the `encoders.onnx_text_int8` setting)."""
    from vidsearch.encoders.onnx.export import export_text, export_vision, quantize_text

    text_path, vision_path = onnx_paths(settings)
    if not text_path.exists():
        export_text(minilm_model_dir(), text_path)
    if not vision_path.exists():
        export_vision(vision_path, settings.encoders.vision_model)
    if settings.encoders.onnx_text_int8 if int8_text is None else int8_text:
        int8_path = text_path.with_name("text.int8.onnx")
        if not int8_path.exists():
            quantize_text(text_path, int8_path)
        text_path = int8_path
    return text_path, vision_path


def load_onnx_encoders(settings: Settings) -> tuple[OrtMiniLMEncoder, OrtEfficientNetEncoder]:
    if settings.encoders.text_model != "minilm":
        raise ModelLoadError("the ONNX path serves MiniLM; set encoders.text_model = 'minilm' or backend = 'torch'")
    cfg = settings.encoders
    text_path, vision_path = ensure_exported(settings, cfg.onnx_text_int8)
    return (
        OrtMiniLMEncoder(text_path, cfg.threads, cfg.batch_size, int8=cfg.onnx_text_int8),
        OrtEfficientNetEncoder(vision_path, cfg.threads, cfg.batch_size, cfg.vision_model),
    )
