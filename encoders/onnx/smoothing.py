"""Activation smoothing and mixed precision for the int8 text graph.

Dynamic int8 quantisation gives every MatMul's input one scale per batch. MiniLM's activations
have a few outlier channels (largest after GELU), so that one scale leaves the other channels
with a handful of int8 levels, and the ranking moves (top-10 overlap about 0.90 against torch).
SmoothQuant (Xiao et al., 2023) moves the outliers into the weights: `X @ W == (X / s) @ (s * W)`
for any positive per-channel `s`, and `s_j = max|X_j|**alpha / max|W_j|**(1 - alpha)` balances
the two ranges so both quantise well. onnxruntime's quantiser has no such pass without extra
packages, so it is done here on the graph: a `Mul` by `1 / s` before each weight MatMul and the
weight rows scaled by `s` (exact in float: the smoothed fp32 graph computes the same vectors).

Mixed precision then keeps in float the MatMuls whose quantisation costs the most: each MatMul
is quantised alone and its cosine loss measured on calibration texts, and the most damaging
ones, holding `keep_share` of the summed loss, stay float.

Calibration texts must come from the training split only; every choice (alpha, keep_share) is
made on validation by `vidsearch bench text-graphs`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Feeds = dict[str, np.ndarray]


def smoothing_scales(act_max: np.ndarray, weight: np.ndarray, alpha: float) -> np.ndarray:
    """Per-input-channel scales `s` for `X @ W` (weight shaped (in, out)): after smoothing, the
    activation range of channel j is `max|X_j| / s_j` and the weight row's `max|W_j| * s_j`."""
    a = np.maximum(np.asarray(act_max, np.float64), 1e-5)
    w = np.maximum(np.abs(np.asarray(weight, np.float64)).max(axis=1), 1e-5)
    return (a**alpha / w ** (1.0 - alpha)).astype(np.float32)


def weight_matmuls(model: Any) -> list[Any]:
    """MatMul nodes whose second input is a stored weight (the ones int8 quantisation changes)."""
    names = {i.name for i in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in names]


def activation_ranges(model: Any, batches: Sequence[Feeds]) -> dict[str, np.ndarray]:
    """Largest |activation| per input channel of each weight MatMul, over the real (unpadded)
    tokens of `batches`."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    inputs = sorted({n.input[0] for n in weight_matmuls(model)})
    for name in inputs:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    ranges: dict[str, np.ndarray] = {}
    for feeds in batches:
        outs = session.run(inputs, feeds)
        real = feeds["attention_mask"].astype(bool)
        for name, value in zip(inputs, outs, strict=True):
            peak = np.abs(value[real]).max(axis=0)
            ranges[name] = np.maximum(ranges[name], peak) if name in ranges else peak
    return ranges


def smooth_graph(model: Any, ranges: dict[str, np.ndarray], alpha: float) -> Any:
    """A copy of `model` with every weight MatMul smoothed (same outputs in float)."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    weights = {i.name: i for i in graph.initializer}
    muls: dict[str, Any] = {}
    for node in weight_matmuls(out):
        w = numpy_helper.to_array(weights[node.input[1]])
        s = smoothing_scales(ranges[node.input[0]], w, alpha)
        weights[node.input[1]].CopyFrom(numpy_helper.from_array((w * s[:, None]).astype(np.float32), node.input[1]))
        inv = f"{node.name}/smooth_inv"
        graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), inv))
        smoothed = f"{node.name}/smoothed_input"
        muls[node.name] = helper.make_node("Mul", [node.input[0], inv], [smoothed], name=f"{node.name}/smooth")
        node.input[0] = smoothed
    nodes = list(graph.node)
    del graph.node[:]
    for node in nodes:  # each Mul right before its MatMul keeps the graph in topological order
        if node.name in muls:
            graph.node.append(muls[node.name])
        graph.node.append(node)
    return out


def keep_float(losses: dict[str, float], keep_share: float) -> list[str]:
    """The most damaging MatMuls, fewest first, that together hold `keep_share` of the loss."""
    total = sum(max(v, 0.0) for v in losses.values())
    kept: list[str] = []
    held = 0.0
    for name in sorted(losses, key=lambda n: -losses[n]):
        if total <= 0 or held >= keep_share * total:
            break
        kept.append(name)
        held += max(losses[name], 0.0)
    return kept


def quantisation_losses(smoothed: Path, encode: Callable[[Path], np.ndarray], scratch: Path) -> dict[str, float]:
    """1 - mean cosine to the float vectors when only that MatMul is quantised, per MatMul."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    reference = encode(smoothed)
    losses = {}
    for node in weight_matmuls(onnx.load(str(smoothed))):
        quantize_dynamic(str(smoothed), str(scratch), weight_type=QuantType.QInt8, per_channel=True, nodes_to_quantize=[node.name])
        losses[node.name] = float(1.0 - (encode(scratch) * reference).sum(axis=1).mean())
    scratch.unlink(missing_ok=True)
    return losses
