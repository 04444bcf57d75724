"""Activation smoothing for the int8 text graph: exact in float, balances the ranges it is meant
to balance, and mixed precision keeps the fewest MatMuls that hold the asked share of the loss."""

from __future__ import annotations

import numpy as np
import pytest

from vidsearch.encoders.onnx.smoothing import activation_ranges, keep_float, smooth_graph, smoothing_scales, weight_matmuls

pytestmark = pytest.mark.unit
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _two_layer_graph(rng: np.random.Generator):
    """x (batch, seq, 8) -> MatMul W1 -> Relu -> MatMul W2 -> y, with an attention_mask input
    that the graph ignores (the calibration reads it to skip padding)."""
    from onnx import TensorProto, helper, numpy_helper

    w1 = rng.normal(size=(8, 16)).astype(np.float32)
    w2 = rng.normal(size=(16, 4)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="first"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["y"], name="second"),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", 8]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", 4])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["y"], feeds)[0]


def test_scales_balance_activation_and_weight_ranges() -> None:
    act = np.array([100.0, 1.0, 0.01], np.float32)  # one outlier channel
    w = np.array([[0.5, -1.0], [2.0, 0.1], [-0.2, 0.2]], np.float32)
    s = smoothing_scales(act, w, alpha=0.5)
    # at alpha 0.5 both sides end with the same range per channel: sqrt(max|X_j| * max|W_j|)
    np.testing.assert_allclose(act / s, np.abs(w).max(1) * s, rtol=1e-5)
    assert (act / s).max() / (act / s).min() < act.max() / act.min()  # the outlier is tamed
    np.testing.assert_allclose(smoothing_scales(act, w, alpha=1.0), act, rtol=1e-5)  # all into the weights


def test_smoothed_graph_computes_the_same_in_float_and_ranges_skip_padding() -> None:
    rng = np.random.default_rng(0)
    model = _two_layer_graph(rng)
    x = rng.normal(size=(2, 5, 8)).astype(np.float32)
    x[..., 3] *= 50  # an outlier channel, as MiniLM has
    mask = np.ones((2, 5), np.int64)
    mask[1, 3:] = 0
    x[1, 3:, 0] = 1e6  # padding: must not count
    feeds = {"x": x, "attention_mask": mask}
    ranges = activation_ranges(model, [feeds])
    assert set(ranges) == {"x", "r"} and ranges["x"][0] < 1e5 and ranges["x"][3] > 10
    smoothed = smooth_graph(model, ranges, alpha=0.7)
    assert [n.op_type for n in smoothed.graph.node] == ["Mul", "MatMul", "Relu", "Mul", "MatMul"]
    assert len(weight_matmuls(smoothed)) == 2
    np.testing.assert_allclose(_run(smoothed, feeds), _run(model, feeds), rtol=1e-4, atol=1e-3)
    # the original is untouched
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Relu", "MatMul"]


def test_keep_float_takes_the_fewest_most_damaging() -> None:
    losses = {"a": 0.5, "b": 0.3, "c": 0.1, "d": 0.1}
    assert keep_float(losses, 0.5) == ["a"]
    assert keep_float(losses, 0.6) == ["a", "b"]
    assert keep_float(losses, 0.0) == []
    assert keep_float(losses, 1.0) == ["a", "b", "c", "d"]
    assert keep_float({"a": 0.0}, 0.5) == []
