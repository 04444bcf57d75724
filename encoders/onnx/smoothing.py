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

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class TextCalibration:
    """Everything a smoothed mixed-precision graph needs from its calibration texts: the
    activation ranges, the smoothing strength and which MatMuls stay float. It is measured once
    on a training split and shipped in the package, so serving rebuilds the very graph that
    `bench text-graphs` judged, with no dataset at hand. `card` says where it came from."""

    alpha: float
    ranges: dict[str, np.ndarray]
    kept: tuple[str, ...]
    card: dict[str, Any] = field(default_factory=dict)

    def digest(self) -> str:
        """Content hash (ranges, alpha, kept): part of the graph's version id, so vectors from
        another calibration never count as the same encoder."""
        h = hashlib.sha256(json.dumps({"alpha": self.alpha, "kept": sorted(self.kept)}, sort_keys=True).encode())
        for name in sorted(self.ranges):
            h.update(name.encode())
            h.update(np.asarray(self.ranges[name], "<f4").tobytes())
        return h.hexdigest()[:12]

    def save(self, path: Path) -> None:
        """npz of plain arrays (loaded without pickle); range names are stored beside their arrays."""
        names = sorted(self.ranges)
        meta = {"alpha": self.alpha, "kept": list(self.kept), "names": names, "card": self.card}
        arrays: dict[str, Any] = {f"range_{i}": np.asarray(self.ranges[n], np.float32) for i, n in enumerate(names)}
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: Path) -> TextCalibration:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            ranges = {n: z[f"range_{i}"].astype(np.float32) for i, n in enumerate(meta["names"])}
        return cls(float(meta["alpha"]), ranges, tuple(meta["kept"]), meta.get("card", {}))


def calibrate(model_path: Path, texts: Sequence[str], encode: Callable[[Path], np.ndarray], feeds: Callable[[list[str]], Feeds],
              alpha: float, keep_share: float, scratch: Path, card: dict[str, Any] | None = None) -> TextCalibration:
    """Measure a `TextCalibration` for the fp32 graph at `model_path` on `texts` (a training
    split's): activation ranges over batches of 32, then, when `keep_share` > 0, each MatMul's
    quantisation loss on the smoothed graph (`encode` runs a graph file on `texts`)."""
    import onnx

    model = onnx.load(str(model_path))
    ranges = activation_ranges(model, [feeds(list(texts[i : i + 32])) for i in range(0, len(texts), 32)])
    kept: list[str] = []
    if keep_share > 0:
        smoothed = scratch.with_name(f"{scratch.stem}.smoothed.onnx")
        onnx.save(smooth_graph(model, ranges, alpha), str(smoothed))
        try:
            kept = keep_float(quantisation_losses(smoothed, encode, scratch), keep_share)
        finally:
            smoothed.unlink(missing_ok=True)
    return TextCalibration(alpha, ranges, tuple(kept), {**(card or {}), "texts": len(texts), "keep_share": keep_share})


def quantize_calibrated(model_path: Path, out: Path, calibration: TextCalibration) -> Path:
    """The smoothed graph, int8 (dynamic, per-channel) on every weight MatMul but the kept ones."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(model_path))
    smoothed = out.with_name(f"{out.stem}.smoothed.onnx")
    onnx.save(smooth_graph(model, calibration.ranges, calibration.alpha), str(smoothed))
    try:
        nodes = [n.name for n in weight_matmuls(model) if n.name not in set(calibration.kept)]
        quantize_dynamic(str(smoothed), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], nodes_to_quantize=nodes)
    finally:
        smoothed.unlink(missing_ok=True)
    log.info("smoothed int8 text graph path=%s alpha=%s kept_float=%s", out, calibration.alpha, len(calibration.kept))
    return out
