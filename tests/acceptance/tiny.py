"""Tiny ONNX models for the daemon's acceptance tests and benchmarks (distinct content per seed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def tiny_model_bytes(seed: int, hidden: int = 64) -> bytes:
    """A two-MatMul model; ``seed`` changes the weights, so every seed is a new model version."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array((rng.standard_normal((hidden, hidden)) / 8).astype(np.float32), f"w{i}")
        for i in range(2)
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w0"], ["h"], name="mm0"),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w1"], ["y"], name="mm1"),
    ]
    graph = helper.make_graph(
        nodes,
        f"tiny{seed}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="dqd-tests")
    model.ir_version = 8
    return model.SerializeToString()


def write_model(path: Path, seed: int, hidden: int = 64) -> Path:
    """Write atomically-enough for tests: the whole file in one go."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tiny_model_bytes(seed, hidden))
    return path
