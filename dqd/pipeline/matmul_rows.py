"""How many activation rows a model's weight MatMuls multiply on one feed: what MatMulNBits' speed hangs on.

MatMulNBits with int8 compute is a fast GEMV (one token of a decoder's decode
step) and a slow GEMM (an encoder's 128 tokens), so the ladder's host rules
prune its rungs by this number (:mod:`dqd.pipeline.ladder_rules`). It is read
by ONNX shape inference on a weightless copy of the graph with the feed's
shapes pinned: no session, no weights in memory beyond the load.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import onnx
from onnx import shape_inference

logger = logging.getLogger(__name__)

# Initializers this small keep their values: shape arithmetic (Reshape targets) reads them.
_KEEP_VALUES_UP_TO = 64


def fewest_matmul_rows(model_path: Path, feed_shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    """The fewest rows (product of all but the last dim of the activation input) any main-graph MatMul
    with a constant weight multiplies, given the graph inputs' shapes.

    A dim (or a whole shape) inference cannot resolve counts as 1, so the
    answer is a lower bound; None when the model has no such MatMul or
    inference fails, which prunes nothing.
    """
    try:
        model = onnx.load(str(model_path), load_external_data=False)
        return _fewest_rows(model, feed_shapes)
    except Exception as exc:  # an estimate for pruning: never worth failing the model over
        logger.debug("shape inference for MatMul rows of %s failed: %s", model_path, exc)
        return None


def _fewest_rows(model: onnx.ModelProto, feed_shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    constants |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    for tensor in graph.initializer:
        if math.prod(tensor.dims) > _KEEP_VALUES_UP_TO:
            for name in ("raw_data", "float_data", "double_data", "int32_data", "int64_data"):
                tensor.ClearField(name)  # inference reads dims and type; the values would only cost memory
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.DEFAULT
    for value in graph.input:
        shape = feed_shapes.get(value.name)
        if shape is not None and value.type.HasField("tensor_type"):
            dims = value.type.tensor_type.shape
            dims.ClearField("dim")
            for size in shape:
                dims.dim.add().dim_value = int(size)
    del graph.value_info[:]  # an earlier inference's symbolic dims would stand in for the pinned ones
    inferred = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    known = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.input)}
    rows: list[int] = []
    for node in inferred.graph.node:
        if node.op_type != "MatMul" or len(node.input) < 2 or node.input[1] not in constants:
            continue
        value = known.get(node.input[0])
        if value is None or not value.type.tensor_type.HasField("shape"):
            rows.append(1)
            continue
        dims = value.type.tensor_type.shape.dim
        leading = [d.dim_value for d in dims[:-1] if d.HasField("dim_value") and d.dim_value > 0]
        rows.append(math.prod(leading))
    return min(rows) if rows else None
