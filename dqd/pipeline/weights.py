"""Which weights a dynamic quantizer can reach: constant tensors, what folds into them, quantizable nodes.

Graph facts preflight (dqd.pipeline.inspect) and its pre-fixes (dqd.pipeline.prefix)
build on: a node is quantizable when one of its weight inputs is known before run
time (stored, a Constant, or computed from constants alone, which onnxruntime's
optimizer folds); and which integer inputs index an embedding table, and how big.
"""

from __future__ import annotations

from collections import Counter

import onnx
from onnx import ModelProto, TensorProto

from dqd.onnxgraph import walk_graphs
from dqd.pipeline.halfprecision import HALF_TYPES, element_types
from dqd.quantops import QUANTIZABLE_WEIGHT_INPUTS

CONTROL_FLOW_OPS = ("If", "Loop", "Scan")
FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE)


def constant_float_tensors(model: ModelProto) -> dict[str, TensorProto]:
    """Float tensors known before run time: initializers and Constant-node outputs, in any graph."""
    found: dict[str, TensorProto] = {}
    for graph, _ in walk_graphs(model.graph):
        for tensor in graph.initializer:
            if tensor.data_type in FLOAT_TYPES:
                found[tensor.name] = tensor
        for node in graph.node:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value" and attr.t.data_type in FLOAT_TYPES:
                        found[node.output[0]] = attr.t
    return found


_NON_FOLDABLE = frozenset(
    {
        *CONTROL_FLOW_OPS,
        # A dequantized weight stays quantized: pre-processing keeps QDQ pairs and the
        # quantizer rewrites float initializers only, so it does not count as float work.
        "DequantizeLinear",
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
    }
)


def constant_derived_names(model: ModelProto) -> set[str]:
    """Constant float tensors plus what simple ops compute from constants alone (``Unsqueeze(Constant)``):
    onnxruntime's optimizer folds those into initializers before the quantizer sees them."""
    known = set(constant_float_tensors(model))
    for graph, _ in walk_graphs(model.graph):
        known.update(t.name for t in graph.initializer)
        for node in graph.node:
            if node.op_type == "Constant":
                known.update(node.output)  # integer constants too: axes and shapes of folded ops
                continue
            if node.op_type in _NON_FOLDABLE:
                continue
            inputs = [name for name in node.input if name]
            if inputs and all(name in known for name in inputs):
                known.update(node.output)
    return known


def computed_weight_ops(model: ModelProto) -> Counter[str]:
    """Main-graph quantizable ops whose weight is computed from constants (``Reshape(Constant)``,
    ``ConstantOfShape``, ``Cast`` chains) rather than stored, by op type; the quantizer only
    takes stored weights (initializers; Constant nodes are folded by pre-processing).

    If/Loop/Scan bodies are left as pre-processing leaves them: only ``--search thorough``
    reaches them, and the one such model known (silero-vad's LSTMs) decides well that way.
    """
    constants = constant_derived_names(model)
    graph = model.graph
    stored = {t.name for t in graph.initializer}
    stored.update(name for node in graph.node if node.op_type == "Constant" for name in node.output)
    found: Counter[str] = Counter()
    for node in graph.node:
        if not is_quantizable(node, constants):
            continue
        weights = QUANTIZABLE_WEIGHT_INPUTS[node.op_type]
        named = [node.input[i] for i in weights if i < len(node.input) and node.input[i] in constants]
        if not any(name in stored for name in named):
            found[node.op_type] += 1
    return found


def quantizable_half_ops(model: ModelProto) -> Counter[str]:
    """Quantizable ops (constant weights) whose inputs are FP16/BF16, by op type."""
    types = element_types(model)
    constants = constant_derived_names(model)
    found: Counter[str] = Counter()
    for graph, _ in walk_graphs(model.graph):
        for node in graph.node:
            if is_quantizable(node, constants) and any(types.get(n) in HALF_TYPES for n in node.input):
                found[node.op_type] += 1
    return found


def is_quantizable(node: onnx.NodeProto, constants: set[str]) -> bool:
    if node.domain not in ("", "ai.onnx", "com.microsoft"):
        return False
    weight_inputs = QUANTIZABLE_WEIGHT_INPUTS.get(node.op_type)
    if not weight_inputs:
        return False
    return any(i < len(node.input) and node.input[i] in constants for i in weight_inputs)


# Ops an integer id may pass through on its way to the embedding table it indexes.
_ID_PASSTHROUGH = frozenset(
    {"Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Expand", "Transpose"}
)


def embedding_table_sizes(model: ModelProto) -> dict[str, int]:
    """Integer graph input -> rows of the smallest Gather table it indexes (ids must stay below it)."""
    tables = constant_float_tensors(model)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    sizes: dict[str, int] = {}
    for value in model.graph.input:
        frontier, seen = [value.name], set()
        while frontier:
            tensor = frontier.pop()
            if tensor in seen:
                continue
            seen.add(tensor)
            for node in consumers.get(tensor, ()):
                if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == tensor:
                    table = tables.get(node.input[0])
                    if table is not None and table.dims:
                        sizes[value.name] = min(sizes.get(value.name, table.dims[0]), table.dims[0])
                elif node.op_type in _ID_PASSTHROUGH:
                    frontier.extend(node.output)
    return sizes
