"""Widening FP16/BF16 models to FP32 (dqd.pipeline.halfprecision) on models built in code,
run in real onnxruntime: the copy computes what the original computes, keeps its signature,
and holds no half-precision tensor or type anywhere (subgraphs included)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from dqd.pipeline.halfprecision import half_types_in, precision_name, widened
from tests import models


def run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def signature(model: onnx.ModelProto) -> list[tuple[str, int]]:
    graph = model.graph
    return [(v.name, v.type.tensor_type.elem_type) for v in [*graph.input, *graph.output]]


def test_an_fp16_model_widens_to_fp32_inside_and_keeps_its_fp16_signature() -> None:
    original = models.half_mlp(32, 2)
    copy = widened(original)
    onnx.checker.check_model(copy)

    assert half_types_in(original) == {TensorProto.FLOAT16}
    assert signature(copy) == signature(original)  # a drop-in replacement: still fed and read as FP16
    assert all(t.data_type == TensorProto.FLOAT for t in copy.graph.initializer)
    assert copy.graph.node[0].op_type == "Cast" and copy.graph.node[-1].op_type == "Cast"
    x = np.random.default_rng(0).standard_normal((3, 32)).astype(np.float16)
    (want,), (got,) = run(original, {"x": x}), run(copy, {"x": x})
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=2e-2, atol=2e-2)
    assert precision_name(original) == "fp16" and precision_name(copy) == "fp32"


def test_a_bf16_model_onnxruntime_cannot_run_runs_once_widened() -> None:
    original = models.half_mlp(16, 1, elem=TensorProto.BFLOAT16)
    copy = widened(original)
    x = np.ones((2, 16), np.float32)
    try:
        run(original, {"x": x})
        runs = True
    except Exception:  # onnxruntime's CPU provider has no BF16 MatMul/Add/Relu
        runs = False
    assert not runs
    (out,) = run(copy, {"x": x})
    assert out.dtype == np.float32 and out.shape == (2, 16)
    assert half_types_in(copy) == set() and precision_name(original) == "bf16"


def test_half_types_are_widened_in_bodies_attributes_and_casts() -> None:
    then_branch = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones(4, np.float16)))],
        "then",
        [],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT16, [4])],
    )
    else_branch = helper.make_graph(
        [
            helper.make_node(
                "ConstantOfShape",
                ["shape"],
                ["z"],
                value=helper.make_tensor("v", TensorProto.FLOAT16, [1], [0.0]),
            )
        ],
        "else",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT16, [4])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("If", ["flag"], ["picked"], then_branch=then_branch, else_branch=else_branch),
            helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16),
            helper.make_node("Add", ["x16", "picked"], ["s"]),
            helper.make_node("Cast", ["s"], ["y"], to=TensorProto.FLOAT),
        ],
        "nested",
        [
            helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [numpy_helper.from_array(np.array([4], np.int64), "shape")],
    )
    original = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    original.ir_version = 8

    copy = widened(original)
    onnx.checker.check_model(copy)

    assert half_types_in(original) == {TensorProto.FLOAT16} and half_types_in(copy) == set()
    x = np.arange(4, dtype=np.float32)
    for flag in (True, False):
        feed = {"flag": np.array(flag), "x": x}
        np.testing.assert_array_equal(run(copy, feed)[0], run(original, feed)[0])


def test_an_input_passed_straight_out_keeps_its_type_and_needs_no_cast() -> None:
    original = models.half_mlp(8, 1)
    original.graph.output.append(helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["batch", 8]))
    copy = widened(original)
    onnx.checker.check_model(copy)
    x = np.ones((1, 8), np.float16)
    outputs = run(copy, {"x": x})
    assert [o.dtype for o in outputs] == [np.float16, np.float16]
    np.testing.assert_array_equal(outputs[1], x)
