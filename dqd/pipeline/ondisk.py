"""onnxruntime's pre-processing and dynamic quantization of a large model, its weights left on disk.

Measured on a 2.19 GiB model (tests/perf/big_model.py): ``quant_pre_process``
loads every weight and symbolic shape inference copies the model, and
``quantize_dynamic`` loads every weight while its quantizer saves and reloads
a whole copy to infer shapes; each step peaked near three times the model.
Neither needs the weights in memory: shape inference reads tensors' types and
dims (and the small shape-carrying constants, loaded into the graph here:
onnxruntime refuses a model whose Reshape target is external),
onnxruntime's optimizer reads the weights from their folder, and the quantizer
reads each weight when it quantizes it (onnx's ``to_array`` reads an external
tensor without keeping its bytes), holding only the quantized copies.

The graphs are the ones onnxruntime's own functions make, but for attributes at
their defaults, which onnxruntime writes out when it saves external initializers
(tests/integration/test_ondisk.py compares them on every run).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
from onnx import ModelProto, TensorProto, numpy_helper

from dqd.onnxgraph import walk_graphs
from dqd.pipeline.external import inline_small_tensors, save_streaming
from dqd.pipeline.inspect import AI_ONNX_DOMAINS
from dqd.text import first_line

logger = logging.getLogger(__name__)

# Where quantize_dynamic loads its model and where its quantizer reloads it (onnxruntime 1.32;
# tests/integration/test_ondisk.py fails on an onnxruntime that moved them).
_QUANTIZER_LOADERS = (
    ("onnxruntime.quantization.quantize", "load_model_with_shape_infer"),
    ("onnxruntime.quantization.onnx_quantizer", "save_and_reload_model_with_shape_infer"),
    ("onnxruntime.quantization.base_quantizer", "save_and_reload_model_with_shape_infer"),
)


OPTIMIZER_FAILED = "onnxruntime's optimizer failed, pre-processed without it"


def pre_process_on_disk(source: Path, target: Path, work: Path, *, skip_symbolic_shape: bool) -> str | None:
    """What ``quant_pre_process`` makes of ``source`` (symbolic shape inference unless skipped,
    onnxruntime's basic optimizations, onnx shape inference, the pre-processed mark), written
    to ``target`` with its data beside it. ``work``: an empty scratch folder.

    As ``quant_pre_process`` does, a graph onnxruntime cannot optimize (an operator it does not
    implement, say) is pre-processed without the optimizations; returns why, else None.
    """
    from onnxruntime.quantization.quant_utils import add_pre_process_metadata

    model = onnx.load(str(source), load_external_data=False)
    # Shape inference reads shape-carrying constants by value (onnxruntime's refuses a Reshape
    # whose target is external): bring the small tensors into the graph, leave the weights.
    inline_small_tensors(model, source.parent)
    opset = next((o.version for o in model.opset_import if o.domain in AI_ONNX_DOMAINS), 0)
    if opset <= 10:
        model = _to_opset_11(model, opset)
    if not skip_symbolic_shape:
        model = _symbolic_shapes(model, source.parent, work)
    optimized, weights, unoptimized = work / "optimized.onnx", work, None
    try:
        optimize_on_disk(model, source.parent, optimized)
    except Exception as exc:  # onnxruntime's Fail, InvalidGraph, NotImplemented, ...
        unoptimized = f"{OPTIMIZER_FAILED}: {first_line(exc, with_type=True)}"
        logger.warning("%s: %s", source, unoptimized)
        model, weights = _infer_in_memory(model), source.parent
    else:
        inferred = work / "inferred.onnx"
        onnx.shape_inference.infer_shapes_path(str(optimized), str(inferred))
        model = onnx.load(str(inferred), load_external_data=False)
    add_pre_process_metadata(model)
    save_streaming(model, target, [weights])
    return unoptimized


def _to_opset_11(model: ModelProto, opset: int) -> ModelProto:
    """As quant_pre_process does below opset 11 (the quantizer upgrades the model to 11, where
    Upsample is gone): Upsample rewritten to Resize, the graph converted, its shapes inferred."""
    from onnxruntime.quantization.fusions import ReplaceUpsampleWithResize
    from onnxruntime.quantization.onnx_model import ONNXModel

    ReplaceUpsampleWithResize(ONNXModel(model), opset).apply()
    return _infer_in_memory(onnx.version_converter.convert_version(model, 11))


def _symbolic_shapes(model: ModelProto, folder: Path, work: Path) -> ModelProto:
    """Symbolic shape inference of the graph; the tensors it reads by value (every input of an Add,
    a Mul, ... and every Constant, whatever its size) are read from ``folder``.

    The cwd is ``work``: it saves "sym_shape_infer_temp.onnx" there when it gives up (never
    beside the user's model, where the watcher would take it for a new one).
    """
    from onnxruntime.tools import symbolic_shape_infer

    reader = getattr(symbolic_shape_infer, "numpy_helper", None)
    if reader is not None:
        symbolic_shape_infer.numpy_helper = _ReadingFrom(folder)
    try:
        with contextlib.chdir(work):
            inferred = symbolic_shape_infer.SymbolicShapeInference.infer_shapes(model)
    finally:
        if reader is not None:
            symbolic_shape_infer.numpy_helper = reader
    if inferred is None:
        raise ValueError("symbolic shape inference supports opset 7 and above")
    return inferred


class _ReadingFrom:
    """onnx's numpy_helper, reading an external tensor from ``folder`` rather than the cwd."""

    def __init__(self, folder: Path) -> None:
        self._folder = str(folder)

    def to_array(self, tensor: TensorProto, base_dir: str = "") -> Any:
        return numpy_helper.to_array(tensor, base_dir or self._folder)

    def __getattr__(self, name: str) -> Any:
        return getattr(numpy_helper, name)


def optimize_on_disk(model: ModelProto, folder: Path, optimized: Path) -> None:
    """onnxruntime's basic graph optimizations (as quant_pre_process runs them) of a graph whose
    weights are in ``folder``, saved to ``optimized`` with every initializer in ``<name>.data``.
    onnxruntime refuses a Reshape whose target is external: see :func:`inline_small_tensors`."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(optimized)
    options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(folder))
    options.add_session_config_entry(
        "session.optimized_model_external_initializers_file_name", optimized.name + ".data"
    )
    onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def weights_on_disk(folder: Path) -> Iterator[bool]:
    """Within: ``quantize_dynamic`` on a model in ``folder`` reads each weight as it quantizes it.

    Yields False (and changes nothing) when this onnxruntime has moved the
    loaders replaced here: quantization then loads the weights as it always did.
    The quantizer's output names its FP32 tensors' data by their place in
    ``folder``: :func:`dqd.pipeline.external.save_streaming` resolves them.
    """
    import importlib

    hooks = []
    for module_name, name in _QUANTIZER_LOADERS:
        module = importlib.import_module(module_name)
        if not hasattr(module, name):
            logger.warning(
                "onnxruntime's quantizer has no %s.%s: a large model is quantized with its weights in memory",
                module_name,
                name,
            )
            yield False
            return
        hooks.append((module, name, getattr(module, name)))
    replacements = {
        "load_model_with_shape_infer": _load_without_weights,
        "save_and_reload_model_with_shape_infer": _infer_in_memory,
    }
    try:
        for module, name, _original in hooks:
            setattr(module, name, replacements[name])
        with contextlib.chdir(folder):  # onnx reads an external tensor relative to the cwd
            yield True
    finally:
        for module, name, original in hooks:
            setattr(module, name, original)


def _load_without_weights(model_path: Path) -> ModelProto:
    """onnxruntime's ``load_model_with_shape_infer`` without loading the external data."""
    from onnxruntime.quantization.quant_utils import add_infer_metadata

    inferred = model_path.with_name(model_path.stem + "-inferred" + model_path.suffix)
    onnx.shape_inference.infer_shapes_path(str(model_path), str(inferred))
    try:
        model = onnx.load(str(inferred), load_external_data=False)
    finally:
        inferred.unlink(missing_ok=True)
    add_infer_metadata(model)
    return model


def _infer_in_memory(model: ModelProto) -> ModelProto:
    """onnxruntime's ``save_and_reload_model_with_shape_infer`` for a graph whose weights are on disk
    (it saves to a file only because a loaded model may pass protobuf's 2 GB).

    The graph may still hold weights: the quantizer writes a transposed copy of each Gemm's
    ``transB`` weight into it just before. Shape inference reads types and dims, so it runs on
    a copy whose main-graph initializers carry no data, and each graph's inferred value_info
    is written back into ``model``, which is returned (protobuf does not give a cleared field's
    memory back while its message lives: moving the bytes would not free them).
    """
    from onnxruntime.quantization.quant_utils import add_infer_metadata

    inferred = onnx.shape_inference.infer_shapes(_without_weights(model))
    for (graph, _), (typed, _) in zip(walk_graphs(model.graph), walk_graphs(inferred.graph), strict=True):
        del graph.value_info[:]
        graph.value_info.extend(typed.value_info)
    add_infer_metadata(model)
    return model


def _without_weights(model: ModelProto) -> ModelProto:
    """``model`` with its main graph's initializers reduced to name, type and dims (bodies and
    Constant nodes are copied whole: they hold no large weights a quantizer writes)."""
    skeleton = ModelProto()
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string"):
        setattr(skeleton, field, getattr(model, field))
    skeleton.opset_import.extend(model.opset_import)
    skeleton.functions.extend(model.functions)
    graph, source = skeleton.graph, model.graph
    graph.name = source.name
    graph.node.extend(source.node)
    graph.input.extend(source.input)
    graph.output.extend(source.output)
    graph.value_info.extend(source.value_info)
    graph.sparse_initializer.extend(source.sparse_initializer)
    for tensor in source.initializer:
        stub = graph.initializer.add()
        stub.name, stub.data_type = tensor.name, tensor.data_type
        stub.dims.extend(tensor.dims)
    return skeleton
