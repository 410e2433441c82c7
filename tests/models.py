"""Small ONNX models built in code for the pipeline tests (no binaries in the repository).

Each builder returns a ``ModelProto``; :func:`save` writes it.  Weights come
from a fixed seed so results are reproducible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _weight(
    name: str, shape: tuple[int, ...], rng: np.random.Generator, scale: float | None = None
) -> TensorProto:
    fan_in = int(np.prod(shape[:-1])) if len(shape) == 2 else int(np.prod(shape[1:]))
    std = scale if scale is not None else 1.0 / np.sqrt(max(1, fan_in))
    return numpy_helper.from_array((rng.standard_normal(shape) * std).astype(np.float32), name)


def _model(
    graph: onnx.GraphProto, opsets: dict[str, int] | None = None, ir_version: int = 8
) -> onnx.ModelProto:
    imports = [helper.make_opsetid(domain, version) for domain, version in (opsets or {"": OPSET}).items()]
    model = helper.make_model(graph, opset_imports=imports, producer_name="dqd-tests")
    model.ir_version = ir_version
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    return path


def save_with_external_data(model: onnx.ModelProto, path: Path) -> Path:
    """``path`` plus every tensor in ``<name>.data`` beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(
        model, str(path), save_as_external_data=True, location=path.name + ".data", size_threshold=0
    )
    return path


def matmul_heavy(hidden: int = 512, layers: int = 4, seed: int = 0) -> onnx.ModelProto:
    """``x[batch, hidden]`` through MatMul+Relu layers: where dynamic quantization pays off."""
    rng = _rng(seed)
    nodes, inits = [], []
    current = "x"
    for layer in range(layers):
        inits.append(_weight(f"w{layer}", (hidden, hidden), rng))
        nodes.append(
            helper.make_node("MatMul", [current, f"w{layer}"], [f"mm{layer}"], name=f"MatMul_{layer}")
        )
        out = "y" if layer == layers - 1 else f"h{layer}"
        nodes.append(helper.make_node("Relu" if out != "y" else "Identity", [f"mm{layer}"], [out]))
        current = out
    graph = helper.make_graph(
        nodes,
        "matmul_heavy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    return _model(graph)


def conv_heavy(channels: int = 16, layers: int = 3, seed: int = 1) -> onnx.ModelProto:
    """An image CNN: Conv+Relu layers on ``x[N, 3, H, W]``, global pooling, class logits."""
    rng = _rng(seed)
    nodes, inits = [], []
    current, in_ch = "x", 3
    for layer in range(layers):
        inits.append(_weight(f"c{layer}", (channels, in_ch, 3, 3), rng))
        nodes.append(helper.make_node("Conv", [current, f"c{layer}"], [f"conv{layer}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"conv{layer}"], [f"r{layer}"]))
        current, in_ch = f"r{layer}", channels
    inits.append(_weight("fc", (channels, 10), rng))
    nodes += [
        helper.make_node("GlobalAveragePool", [current], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_heavy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    return _model(graph)


def token_gather(vocab: int = 50, dim: int = 32, seed: int = 2) -> onnx.ModelProto:
    """Token ids feed an embedding Gather (ids must stay below ``vocab``), masked, then a projection."""
    rng = _rng(seed)
    inits = [_weight("embedding", (vocab, dim), rng, scale=1.0), _weight("proj", (dim, dim), rng)]
    nodes = [
        helper.make_node("Gather", ["embedding", "input_ids"], ["embedded"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis_last"], ["mask_3d"]),
        helper.make_node("Mul", ["embedded", "mask_3d"], ["masked"]),
        helper.make_node("MatMul", ["masked", "proj"], ["hidden"]),
    ]
    inits.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "axis_last"))
    graph = helper.make_graph(
        nodes,
        "token_gather",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "sequence", dim])],
        inits,
    )
    return _model(graph)


def constant_node_weights(hidden: int = 64, seed: int = 3) -> onnx.ModelProto:
    """MatMul weights held in Constant nodes instead of initializers (as Paddle exports do)."""
    rng = _rng(seed)
    w0 = _weight("w0", (hidden, hidden), rng)
    w1 = _weight("w1", (hidden, hidden), rng)
    nodes = [
        helper.make_node("Constant", [], ["w0_out"], value=w0),
        helper.make_node("Constant", [], ["w1_out"], value=w1),
        helper.make_node("MatMul", ["x", "w0_out"], ["h"]),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("MatMul", ["hr", "w1_out"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", hidden])],
    )
    return _model(graph)


def old_opset() -> onnx.ModelProto:
    model = matmul_heavy(hidden=8, layers=1)
    model.opset_import[0].version = 9
    return model


def fp16_weights() -> onnx.ModelProto:
    rng = _rng(4)
    weight = numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float16), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "fp16",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["batch", 8])],
        [weight],
    )
    return _model(graph)


def ml_only() -> onnx.ModelProto:
    """Classical ML: only the ai.onnx.ml domain (like logreg-iris)."""
    node = helper.make_node("Normalizer", ["x"], ["y"], domain="ai.onnx.ml", norm="L2")
    graph = helper.make_graph(
        [node],
        "ml_only",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])],
    )
    return _model(graph, opsets={"ai.onnx.ml": 1})


def already_quantized() -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.ones((8, 8), dtype=np.int8), "w_q")
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
        helper.make_node("MatMulInteger", ["xq", "w_q", "xz"], ["yi"]),
        helper.make_node("Cast", ["yi"], ["yf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["yf", "xs"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "quantized",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        [weight],
    )
    return _model(graph)


def nothing_quantizable() -> onnx.ModelProto:
    bias = numpy_helper.from_array(np.ones((8,), dtype=np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["s"]), helper.make_node("Relu", ["s"], ["y"])],
        "elementwise",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        [bias],
    )
    return _model(graph)


def matmul_only_in_subgraphs(hidden: int = 16) -> onnx.ModelProto:
    """Every MatMul sits inside If branches (like silero-vad's network)."""
    rng = _rng(5)

    def branch(name: str) -> onnx.GraphProto:
        return helper.make_graph(
            [helper.make_node("MatMul", ["x", f"{name}_w"], [f"{name}_y"])],
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, ["batch", hidden])],
            [_weight(f"{name}_w", (hidden, hidden), rng)],
        )

    node = helper.make_node("If", ["flag"], ["y"], then_branch=branch("then"), else_branch=branch("else"))
    graph = helper.make_graph(
        [node],
        "subgraph_only",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", hidden]),
            helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", hidden])],
    )
    return _model(graph)


def save_with_escaping_external_data(model: onnx.ModelProto, path: Path) -> Path:
    """Save with external data, then point it outside the model's folder (must be refused)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(
        model, str(path), save_as_external_data=True, location=path.name + ".data", size_threshold=0
    )
    outside = path.parent.parent / "outside.data"
    (path.parent / (path.name + ".data")).rename(outside)
    loaded = onnx.load(str(path), load_external_data=False)
    for tensor in loaded.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../outside.data"
    onnx.save_model(loaded, str(path))
    return path


def ir3_pad_then_matmul(*, weights_listed: bool = True) -> onnx.ModelProto:
    """An IR 3 export (PyTorch 0.3 era): Pad with a ``pads`` attribute, weights among the graph inputs.

    Upgrading Pad to opset 11 turns ``pads`` into an initializer, which IR 3 forbids
    unless it is also a graph input: the converter's output fails the checker as it is.
    ``weights_listed=False``: the weight is left out of the inputs, as some old exporters did.
    """
    rng = _rng(7)
    weight = _weight("w", (6, 3), rng)
    graph = helper.make_graph(
        [
            helper.make_node("Pad", ["x"], ["padded"], pads=[0, 1, 0, 1], mode="constant", value=0.0),
            helper.make_node("MatMul", ["padded", "w"], ["y"]),
        ],
        "ir3_pad",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
            *([helper.make_tensor_value_info("w", TensorProto.FLOAT, [6, 3])] if weights_listed else []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [weight],
    )
    return _model(graph, opsets={"": 6}, ir_version=3)


def old_broadcast_add() -> onnx.ModelProto:
    """Opset 6's ``Add(broadcast=1)``: onnxruntime has no kernel for it, so the original cannot run."""
    rng = _rng(8)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["y"], broadcast=1),
        ],
        "old_add",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [8, 8]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [8]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
        [_weight("w", (8, 8), rng), _weight("b", (8,), rng, scale=1.0)],
    )
    return _model(graph, opsets={"": 6}, ir_version=3)


def old_unknown_op() -> onnx.ModelProto:
    """Opset 9 with an op no schema knows: no converter target can take it."""
    rng = _rng(9)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Frobnicate", ["h"], ["y"])],
        "old_unknown",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
        [_weight("w", (8, 8), rng)],
    )
    return _model(graph, opsets={"": 9}, ir_version=4)


def runs_only_at_height(height: int = 48) -> onnx.ModelProto:
    """An image model whose dynamic height must be ``height`` (a text recogniser's constraint):
    a learned bias of that height is broadcast over it, then pooled and projected by a MatMul."""
    rng = _rng(10)
    bias = numpy_helper.from_array(rng.standard_normal((1, 1, height, 1)).astype(np.float32), "row_bias")
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "row_bias"], ["biased"], name="add_row_bias"),
            helper.make_node("ReduceMean", ["biased"], ["pooled"], axes=[3], keepdims=0),
            helper.make_node("MatMul", ["pooled", "w"], ["y"]),
        ],
        "fixed_height",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 16])],
        [bias, _weight("w", (height, 16), rng)],
    )
    return _model(graph, opsets={"": 13})


def partly_quantized(*, float_left: bool = True) -> onnx.ModelProto:
    """A QDQ weight (int8, dequantized at run time) feeding one MatMul, then a MatMul with float
    weights (``float_left=False``: that one is QDQ too, so nothing float is left)."""
    rng = _rng(11)
    inits = [
        numpy_helper.from_array(rng.integers(-127, 128, (64, 64)).astype(np.int8), "w1_q"),
        numpy_helper.from_array(np.array(0.01, np.float32), "w1_scale"),
        numpy_helper.from_array(np.array(0, np.int8), "w1_zero"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["w1_q", "w1_scale", "w1_zero"], ["w1"]),
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="qdq_matmul"),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["y"], name="float_matmul"),
    ]
    if float_left:
        inits.append(_weight("w2", (64, 64), rng))
    else:
        inits.append(numpy_helper.from_array(rng.integers(-127, 128, (64, 64)).astype(np.int8), "w2_q"))
        nodes.insert(0, helper.make_node("DequantizeLinear", ["w2_q", "w1_scale", "w1_zero"], ["w2"]))
    graph = helper.make_graph(
        nodes,
        "partly_quantized",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])],
        inits,
    )
    return _model(graph)


def _half(values: np.ndarray, name: str, elem: int) -> TensorProto:
    """``values`` as an FP16 or BF16 initializer (numpy has no bfloat16: BF16 is stored as its bits)."""
    if elem == TensorProto.FLOAT16:
        return numpy_helper.from_array(values.astype(np.float16), name)
    bits = (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)  # truncation: exact for tests
    return helper.make_tensor(name, TensorProto.BFLOAT16, values.shape, bits.tobytes(), raw=True)


def half_mlp(
    hidden: int = 64, layers: int = 2, *, elem: int = TensorProto.FLOAT16, seed: int = 5
) -> onnx.ModelProto:
    """``x[batch, hidden]`` through MatMul+Add+Relu layers computed in FP16 (or BF16) throughout.

    FP16: inputs and outputs FP16 too, as an FP16 export has them. BF16: FP32
    inputs and outputs cast at the edges (onnxruntime's Python API cannot hand
    back BF16 tensors), the usual shape of a BF16 export for CPU.
    """
    rng = _rng(seed)
    io_type = TensorProto.FLOAT16 if elem == TensorProto.FLOAT16 else TensorProto.FLOAT
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = []
    current = "x"
    if io_type != elem:
        nodes.append(helper.make_node("Cast", ["x"], ["x_half"], to=elem))
        current = "x_half"
    for layer in range(layers):
        weights = rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)
        inits += [
            _half(weights, f"w{layer}", elem),
            _half(rng.standard_normal(hidden) * 0.1, f"b{layer}", elem),
        ]
        nodes += [
            helper.make_node("MatMul", [current, f"w{layer}"], [f"m{layer}"]),
            helper.make_node("Add", [f"m{layer}", f"b{layer}"], [f"a{layer}"]),
            helper.make_node("Relu", [f"a{layer}"], [f"h{layer}"]),
        ]
        current = f"h{layer}"
    nodes.append(helper.make_node("Cast", [current], ["y"], to=io_type))
    graph = helper.make_graph(
        nodes,
        "half_mlp",
        [helper.make_tensor_value_info("x", io_type, ["batch", hidden])],
        [helper.make_tensor_value_info("y", io_type, ["batch", hidden])],
        inits,
    )
    return _model(graph)


def fp16_saturating(hidden: int = 32) -> onnx.ModelProto:
    """An FP16 model that relies on FP16 overflow (a Cast to FP16 turns large values into inf,
    clipped to 1e9): widened to FP32 nothing overflows, so the copy computes something else,
    which the equivalence check must catch."""
    rng = _rng(6)
    weights = rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Cast", ["m"], ["m_wide"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["m_wide", "k"], ["scaled"]),
        helper.make_node("Cast", ["scaled"], ["narrow"], to=TensorProto.FLOAT16),  # |v| > 65504: inf
        helper.make_node("Cast", ["narrow"], ["wide"], to=TensorProto.FLOAT),
        helper.make_node("Clip", ["wide", "low", "high"], ["y"]),
    ]
    inits = [
        _half(weights, "w", TensorProto.FLOAT16),
        numpy_helper.from_array(np.array(1e5, np.float32), "k"),
        numpy_helper.from_array(np.array(-1e9, np.float32), "low"),
        numpy_helper.from_array(np.array(1e9, np.float32), "high"),
    ]
    graph = helper.make_graph(
        nodes,
        "saturating",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["batch", hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    return _model(graph)


def computed_conv_weights() -> onnx.ModelProto:
    """A Conv whose weight is ``Reshape(Constant)`` (computed, as in onnx's light/ models), then a
    BatchNormalization (which onnxruntime's fold fuses into the Conv)."""
    rng = _rng(7)
    weights = (rng.standard_normal((8, 4, 3, 3)) / 6).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["flat"], value=numpy_helper.from_array(weights.ravel())),
        helper.make_node("Reshape", ["flat", "shape"], ["w"]),
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(weights.shape, np.int64), "shape"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 8).astype(np.float32), "scale"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "bias"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32) * 0.1, "mean"),
        numpy_helper.from_array(rng.uniform(0.5, 2.0, 8).astype(np.float32), "var"),
    ]
    graph = helper.make_graph(
        nodes,
        "computed_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8, 16, 16])],
        inits,
    )
    return _model(graph)
