"""The bridge head as an ONNX graph, for engines that serve ONNX beside the backbone (an OpenSearch
ml-commons or Triton deployment runs backbone + head as two models) and as a check that the npz
the package serves is the function that was trained.

The graph is written node by node with `onnx.helper` rather than traced from torch: the head is
two dense layers, a ReLU and an L2 normalisation, and serving never needs torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidsearch.encoders.visual_bridge.head import BridgeHead, BridgeHeadError

OPSET = 17
INPUT, OUTPUT = "features", "bridge"


def export_head(head: BridgeHead, out: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.ascontiguousarray(a, np.float32), name)
             for name, a in (("w1", head.w1), ("b1", head.b1), ("w2", head.w2), ("b2", head.b2))]
    nodes = [
        helper.make_node("MatMul", [INPUT, "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["o0"]),
        helper.make_node("Add", ["o0", "b2"], ["o1"]),
        helper.make_node("LpNormalization", ["o1"], [OUTPUT], axis=1, p=2),
    ]
    graph = helper.make_graph(
        nodes, "bridge_head",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", head.w1.shape[0]])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", head.w2.shape[1]])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vidsearch")
    model.metadata_props.add(key="version", value=head.version)
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


def head_parity(head: BridgeHead, onnx_path: Path, features: np.ndarray) -> float:
    """Minimum cosine between the numpy head and onnxruntime on `features` (1.0 for none)."""
    import onnxruntime as ort

    if len(features) == 0:
        return 1.0
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    served = session.run([OUTPUT], {INPUT: np.ascontiguousarray(features, np.float32)})[0]
    ref = head(features)
    return float(np.min((served * ref).sum(axis=1)))


def export_checked(head: BridgeHead, out: Path, features: np.ndarray, min_cos: float = 0.9999) -> float:
    """Export and refuse an export that does not reproduce the head (`BridgeHeadError`)."""
    export_head(head, out)
    parity = head_parity(head, out, features)
    if parity < min_cos:
        out.unlink(missing_ok=True)
        raise BridgeHeadError(f"ONNX bridge head parity {parity:.6f} < {min_cos}; export removed")
    return parity
