"""Export the torch text and vision encoders to ONNX (needs torch; serving does not).

The exported graphs compute exactly what the torch encoders return: MiniLM with attention-masked
mean pooling and L2 normalisation; EfficientNet-Lite's pooled features and logits. Files are
named by the encoder version, so a changed backbone can never be served by a stale graph.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, cast

from vidsearch.encoders.onnx.smoothing import TextCalibration, calibrate, quantize_calibrated
from vidsearch.encoders.vision import DEFAULT_BACKBONE, backbone

log = logging.getLogger(__name__)
OPSET = 17


def onnx_dir(cache_dir: Path, version: str) -> Path:
    return cache_dir / "onnx" / version.replace("@", "-")


def export_text(model_dir: Path, out: Path) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer

    # Eager attention exports as plain MatMul/Softmax that onnxruntime recognises and fuses.
    st = SentenceTransformer(str(model_dir), device="cpu", model_kwargs={"attn_implementation": "eager"})
    # st[0] is sentence-transformers' Transformer module; torch types its attributes Tensor | Module.
    bert = cast(torch.nn.Module, st[0].auto_model).eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    ids = torch.ones((2, 8), dtype=torch.long)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        Pooled().eval(),
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        str(out),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["embedding"],
        dynamic_axes={n: {0: "batch", 1: "seq"} for n in ("input_ids", "attention_mask", "token_type_ids")}
        | {"embedding": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    log.info("exported text encoder path=%s", out)
    return out


def export_vision(out: Path, name: str = DEFAULT_BACKBONE) -> Path:
    import torch

    from vidsearch.encoders.vision import load_efficientnet

    net = load_efficientnet(name)
    size = backbone(name).input_size

    class Heads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            pooled = self.net._avg_pooling(self.net.extract_features(pixels)).flatten(1)
            return pooled, self.net._fc(pooled)

    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        Heads().eval(),
        (torch.zeros((1, 3, size, size)),),
        str(out),
        input_names=["pixels"],
        output_names=["features", "logits"],
        dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    log.info("exported vision encoder path=%s", out)
    return out


def ffn_matmuls(fp32: Path) -> list[str]:
    """The feed-forward MatMuls of every layer (intermediate and output dense): two thirds of
    the encoder's multiply-adds, and less sensitive to int8 than attention's projections."""
    import onnx

    graph = onnx.load(str(fp32)).graph
    return [n.name for n in graph.node if n.op_type == "MatMul" and "/attention/" not in n.name
            and ("/intermediate/dense/" in n.name or "/output/dense/" in n.name)]


def quantize_text(fp32: Path, out: Path, per_channel: bool = True, nodes: list[str] | None = None) -> Path:
    """int8 dynamic quantisation of the text graph (weights int8, activations quantised per
    batch at run time): every op onnxruntime can quantise (MatMuls and the embedding Gathers),
    or only `nodes`; per-channel weight scales by default."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=per_channel, nodes_to_quantize=nodes)
    log.info("quantised text encoder path=%s per_channel=%s nodes=%s", out, per_channel, len(nodes) if nodes else "all")
    return out


def quantize_text_static(fp32: Path, out: Path, feeds: list[dict]) -> Path:
    """int8 static quantisation (QDQ, per-channel weights) of the text graph's MatMuls, with
    activation ranges calibrated on `feeds` (tokenised real captions): no range is computed at
    run time, at the price of ranges fixed by the calibration texts."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self.items, None)

    quantize_static(str(fp32), str(out), Feeds(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    log.info("statically quantised text encoder path=%s calibration_batches=%s", out, len(feeds))
    return out


SMOOTH_ALPHA = 0.7  # chosen on the validation split by `bench text-graphs` (0.6-0.8 tried)
# The MatMuls holding this share of the quantisation loss stay float. Chosen on the validation
# split by `bench text-graphs`: 0.5 (1.72x) moved one query's rank on naive fusion, 0.65 (1.55x)
# kept both routes' R@sum and top-10 overlap >= 0.95, 0.8 (1.26x) moved two.
MIXED_KEEP_SHARE = 0.65


def quantize_text_smooth(fp32: Path, out: Path, texts: list[str], alpha: float = SMOOTH_ALPHA,
                         keep_share: float = 0.0, threads: int = 2) -> Path:
    """int8 dynamic quantisation after SmoothQuant-style smoothing (see `smoothing`), with the
    most damaging MatMuls kept float when `keep_share` > 0. `texts` calibrate both (real
    captions of the training split)."""
    return quantize_calibrated(fp32, out, calibrate_text(fp32, texts, alpha, keep_share, threads))


def calibrate_text(fp32: Path, texts: list[str], alpha: float = SMOOTH_ALPHA, keep_share: float = MIXED_KEEP_SHARE,
                   threads: int = 2, card: dict[str, Any] | None = None) -> TextCalibration:
    """A `TextCalibration` of the fp32 MiniLM graph on `texts` (a training split's)."""
    from vidsearch.encoders.onnx.serve import OrtMiniLMEncoder

    enc = OrtMiniLMEncoder(fp32, threads, 32)
    with tempfile.TemporaryDirectory(prefix="vidsearch-calibration-") as scratch:  # probe graphs of its own
        return calibrate(fp32, texts, lambda p: OrtMiniLMEncoder(p, threads, 32).encode(texts), enc.feeds, alpha, keep_share,
                         Path(scratch) / "probe.onnx", card)
