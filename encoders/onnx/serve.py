"""onnxruntime serving of the exported encoders: same interfaces as the torch ones, no torch.

Tokenisation uses the `tokenizers` library on MiniLM's own tokenizer.json, with the same
truncation (256 tokens) as sentence-transformers, so both paths see identical token ids.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from vidsearch.core.settings import Settings
from vidsearch.encoders.errors import MissingExtraError, ModelLoadError
from vidsearch.encoders.onnx.export import onnx_dir
from vidsearch.encoders.onnx.smoothing import TextCalibration, quantize_calibrated
from vidsearch.encoders.text import Kind, _with_empty_rows, minilm_model_dir, minilm_version
from vidsearch.encoders.vision import DEFAULT_BACKBONE, N_CLASSES, VisionOutput, backbone, efficientnet_version, preprocess

MAX_TOKENS = 256
TextGraph = Literal["fp32", "int8", "int8_smooth"]


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

    def __init__(self, model_path: Path, threads: int = 2, batch_size: int = 32, int8: bool = False,
                 calibration: str | None = None) -> None:
        """`int8` / `calibration` (a `TextCalibration` digest) name the graph in the version id."""
        from tokenizers import Tokenizer

        model_dir = minilm_model_dir()
        self.version = minilm_version(int8, calibration)
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


TEXT_CALIBRATION = Path(__file__).with_name("text_calibration.npz")


@functools.cache
def shipped_calibration() -> TextCalibration:
    """The calibration `int8_smooth` is built from: measured on the Tux Paint train split by
    `vidsearch encoders calibrate-text` and shipped, so serving needs no dataset. Read once per
    process (every text encoder and version lookup asks for it); callers must not modify it."""
    if not TEXT_CALIBRATION.exists():
        raise ModelLoadError(f"{TEXT_CALIBRATION} is missing from the package; reinstall vidsearch")
    return TextCalibration.load(TEXT_CALIBRATION)


def ensure_exported(settings: Settings, text_graph: TextGraph | None = None) -> tuple[Path, Path]:
    """Export once (torch needed only then); later calls just return the paths. The text path
    is the `text_graph` one (default: the `encoders.onnx_text_graph` setting), built from the
    fp32 export the first time it is asked for."""
    from vidsearch.encoders.onnx.export import export_text, export_vision, quantize_text

    text_path, vision_path = onnx_paths(settings)
    if not text_path.exists():
        export_text(minilm_model_dir(), text_path)
    if not vision_path.exists():
        export_vision(vision_path, settings.encoders.vision_model)
    graph = settings.encoders.onnx_text_graph if text_graph is None else text_graph
    if graph == "int8":
        int8_path = text_path.with_name("text.int8.onnx")
        if not int8_path.exists():
            quantize_text(text_path, int8_path)
        return int8_path, vision_path
    if graph == "int8_smooth":
        calibration = shipped_calibration()
        smooth_path = text_path.with_name(f"text.int8_smooth.{calibration.digest()}.onnx")
        if not smooth_path.exists():
            partial = smooth_path.with_name(f".{smooth_path.name}.{os.getpid()}.part")
            quantize_calibrated(text_path, partial, calibration)
            os.replace(partial, smooth_path)  # a reader never opens a half-written graph
        return smooth_path, vision_path
    return text_path, vision_path


def text_encoder_for(path: Path, settings: Settings, graph: TextGraph | None = None) -> OrtMiniLMEncoder:
    """The ONNX text encoder for a graph `ensure_exported` returned, with that graph's version id."""
    cfg = settings.encoders
    graph = cfg.onnx_text_graph if graph is None else graph
    calibration = shipped_calibration().digest() if graph == "int8_smooth" else None
    return OrtMiniLMEncoder(path, cfg.threads, cfg.batch_size, int8=graph == "int8", calibration=calibration)


def load_onnx_encoders(settings: Settings) -> tuple[OrtMiniLMEncoder, OrtEfficientNetEncoder]:
    if settings.encoders.text_model != "minilm":
        raise ModelLoadError("the ONNX path serves MiniLM; set encoders.text_model = 'minilm' or backend = 'torch'")
    cfg = settings.encoders
    text_path, vision_path = ensure_exported(settings)
    return (
        text_encoder_for(text_path, settings),
        OrtEfficientNetEncoder(vision_path, cfg.threads, cfg.batch_size, cfg.vision_model),
    )
