"""Half precision (FP16, BF16) on a working copy: find it, and widen a copy to FP32.

onnxruntime's dynamic quantizer only rewrites FP32 weights, and its CPU
provider has few BF16 kernels. :func:`widened` returns a copy that computes in
FP32 wherever the model computes in FP16 or BF16: half-precision weights and
attribute tensors become FP32, ``Cast``/``dtype`` attributes that name a half
type name FP32, and every value type follows. The main graph's inputs and
outputs keep their declared types behind boundary ``Cast`` nodes, so a variant
built from the copy is a drop-in replacement for the original (a server that
feeds FP16 keeps feeding FP16).

No maintained FP16/BF16 → FP32 converter exists on the package registries
(onnxconverter-common and onnxruntime's transformers tools only go the other
way), hence this module. Pure proto work: no files, no sessions (ONNX type inference
for :func:`element_types`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import onnx
from onnx import (
    AttributeProto,
    GraphProto,
    ModelProto,
    NodeProto,
    TensorProto,
    ValueInfoProto,
    helper,
    numpy_helper,
)

from dqd.onnxgraph import model_graphs, node_tensors, walk_graphs

HALF_TYPES: dict[int, str] = {TensorProto.FLOAT16: "fp16", TensorProto.BFLOAT16: "bf16"}
# Ops whose ``dtype`` attribute names the element type they produce.
_DTYPE_ATTRIBUTE_OPS = frozenset(
    {"EyeLike", "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli"}
)
_BOUNDARY_SUFFIX = "__dqd_fp32"


def half_types_in(model: ModelProto) -> set[int]:
    """The half-precision element types ``model`` stores or computes in (empty: none). Pure."""
    found: set[int] = set()
    for graph in model_graphs(model):
        found.update(t.data_type for t in graph.initializer if t.data_type in HALF_TYPES)
        for value in _values(graph):
            elem = value.type.tensor_type.elem_type
            if elem in HALF_TYPES:
                found.add(elem)
        for node in graph.node:
            found.update(t.data_type for t in node_tensors(node) if t.data_type in HALF_TYPES)
            found.update(_named_types(node) & set(HALF_TYPES))
    return found


def precision_name(model: ModelProto) -> str:
    """What the model's float weights mostly are: ``fp32``, ``fp16``, ``bf16`` or ``fp64``. Pure."""
    counts: dict[str, int] = {}
    names = {TensorProto.FLOAT: "fp32", TensorProto.DOUBLE: "fp64", **HALF_TYPES}
    for graph in model_graphs(model):
        tensors = [*graph.initializer, *(t for n in graph.node for t in node_tensors(n))]
        for tensor in tensors:
            name = names.get(tensor.data_type)
            if name is not None:
                counts[name] = counts.get(name, 0) + math.prod(tensor.dims)
    return max(counts, key=lambda name: counts[name]) if counts else "fp32"


def boundary_half_types(model: ModelProto) -> dict[str, int]:
    """The main graph's inputs and outputs declared in a half type: name → element type."""
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    values = [v for v in graph.input if v.name not in initializers] + list(graph.output)
    return {
        v.name: v.type.tensor_type.elem_type for v in values if v.type.tensor_type.elem_type in HALF_TYPES
    }


def widened(model: ModelProto) -> ModelProto:
    """A copy of ``model`` that computes in FP32 where it computed in FP16/BF16 (see the module doc)."""
    copy = ModelProto()
    copy.CopyFrom(model)
    boundaries = boundary_half_types(copy)
    for graph in model_graphs(copy):
        _widen_graph(graph)
    for function in copy.functions:
        for node in function.node:
            _widen_node(node)
    _keep_boundary_types(copy.graph, boundaries)
    return copy


def _widen_graph(graph: GraphProto) -> None:
    for index, tensor in enumerate(graph.initializer):
        if tensor.data_type in HALF_TYPES:
            graph.initializer[index].CopyFrom(_widened_tensor(tensor))
    for value in _values(graph):
        if value.type.tensor_type.elem_type in HALF_TYPES:
            value.type.tensor_type.elem_type = TensorProto.FLOAT
    for node in graph.node:
        _widen_node(node)


def _widen_node(node: NodeProto) -> None:
    for attr in node.attribute:
        if attr.type == AttributeProto.TENSOR and attr.t.data_type in HALF_TYPES:
            attr.t.CopyFrom(_widened_tensor(attr.t))
        elif attr.type == AttributeProto.TENSORS:
            for index, tensor in enumerate(attr.tensors):
                if tensor.data_type in HALF_TYPES:
                    attr.tensors[index].CopyFrom(_widened_tensor(tensor))
        elif attr.type == AttributeProto.INT and attr.i in HALF_TYPES and _names_type(node, attr.name):
            attr.i = TensorProto.FLOAT


def _keep_boundary_types(graph: GraphProto, boundaries: dict[str, int]) -> None:
    """Put the original half types back on the main graph's inputs and outputs, behind Casts."""
    if not boundaries:
        return
    inputs = {v.name for v in graph.input}
    renamed = {name: name + _BOUNDARY_SUFFIX for name in boundaries}
    for inner, _depth in walk_graphs(graph):  # outer names are visible inside bodies
        for node in inner.node:
            node.input[:] = [renamed.get(name, name) for name in node.input]
            node.output[:] = [renamed.get(name, name) for name in node.output]
    for value in graph.value_info:
        value.name = renamed.get(value.name, value.name)
    casts_in = [
        helper.make_node("Cast", [value.name], [renamed[value.name]], to=TensorProto.FLOAT)
        for value in graph.input
        if value.name in boundaries
    ]
    casts_out = []
    for value in [*graph.input, *graph.output]:
        if value.name in boundaries:
            value.type.tensor_type.elem_type = boundaries[value.name]
    for value in graph.output:
        if value.name in boundaries and value.name not in inputs:  # an input passed straight out stays
            casts_out.append(
                helper.make_node("Cast", [renamed[value.name]], [value.name], to=boundaries[value.name])
            )
    nodes = [*casts_in, *graph.node, *casts_out]
    del graph.node[:]
    graph.node.extend(nodes)


def _widened_tensor(tensor: TensorProto) -> TensorProto:
    values = numpy_helper.to_array(tensor).astype(np.float32)
    return numpy_helper.from_array(values, tensor.name)


def _values(graph: GraphProto) -> Iterable[ValueInfoProto]:
    return [*graph.input, *graph.output, *graph.value_info]


def _names_type(node: NodeProto, attribute: str) -> bool:
    """Whether ``attribute`` of ``node`` is an element type (Cast's ``to``, a generator's ``dtype``)."""
    return (node.op_type == "Cast" and attribute == "to") or (
        node.op_type in _DTYPE_ATTRIBUTE_OPS and attribute == "dtype"
    )


def _named_types(node: NodeProto) -> set[int]:
    return {
        attr.i for attr in node.attribute if attr.type == AttributeProto.INT and _names_type(node, attr.name)
    }


def element_types(model: ModelProto) -> dict[str, int]:
    """Every named tensor's element type that the model declares or shape inference can tell."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # an invalid or oversized graph: what it declares is all there is to go on
        inferred = model
    types: dict[str, int] = {}
    for graph, _ in walk_graphs(inferred.graph):
        types.update((t.name, t.data_type) for t in graph.initializer)
        for value in _values(graph):
            if value.type.tensor_type.elem_type:
                types[value.name] = value.type.tensor_type.elem_type
        for node in graph.node:
            if node.op_type == "Constant":
                types.update((node.output[0], t.data_type) for t in node_tensors(node))
    return types
