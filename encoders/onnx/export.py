"""Export the torch text and vision encoders to ONNX (needs torch; serving does not).

The exported graphs compute exactly what the torch encoders return: MiniLM with attention-masked
mean pooling and L2 normalisation; EfficientNet-Lite0's pooled features and logits. Files are
named by the encoder version, so a changed backbone can never be served by a stale graph.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

from vidsearch.encoders.vision import INPUT_SIZE

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


def export_vision(out: Path) -> Path:
    import torch

    from vidsearch.encoders.vision import load_efficientnet

    net = load_efficientnet()

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
        (torch.zeros((1, 3, INPUT_SIZE, INPUT_SIZE)),),
        str(out),
        input_names=["pixels"],
        output_names=["features", "logits"],
        dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    log.info("exported vision encoder path=%s", out)
    return out


def quantize_text(fp32: Path, out: Path) -> Path:
    """int8 dynamic quantisation (per-channel weights) of every MatMul of the text graph."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True)
    log.info("quantised text encoder path=%s", out)
    return out
