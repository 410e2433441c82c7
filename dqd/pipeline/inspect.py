"""Preflight: read a model once, describe it, and decide whether there is anything to do.

Every model gets a recorded outcome before any quantization attempt: an ``error``
for input we cannot or must not process, ``skipped`` for valid models with
nothing to quantize, otherwise ``None`` (go on).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import GraphProto, ModelProto, TensorProto

from dqd.domain import Outcome
from dqd.onnxgraph import all_tensors, walk_graphs
from dqd.pipeline.halfprecision import boundary_half_types, half_types_in, precision_name
from dqd.pipeline.weights import (
    CONTROL_FLOW_OPS,
    FLOAT_TYPES,
    computed_weight_ops,
    constant_derived_names,
    embedding_table_sizes,
    is_quantizable,
    quantizable_half_ops,
)
from dqd.records import GraphSummary, TensorInfo
from dqd.text import first_line

MIN_AI_ONNX_OPSET = 10
PROTOBUF_LIMIT_BYTES = 2 * 1024**3
AI_ONNX_DOMAINS = ("", "ai.onnx")

QUANTIZED_OPS = frozenset(
    {
        "MatMulInteger",
        "ConvInteger",
        "DynamicQuantizeLinear",
        "DynamicQuantizeLSTM",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "MatMulNBits",
        "QAttention",
        "QGemm",
        "QuantizeLinear",
        "DequantizeLinear",
    }
)


class FixableCause(StrEnum):
    """What preflight found that a pre-fix (:mod:`dqd.pipeline.prefix`) can repair on a working copy."""

    OLD_OPSET = "old_opset"  # ai.onnx opset below the quantizer's MIN_AI_ONNX_OPSET
    HALF_PRECISION = "half_precision"  # quantizable ops compute in FP16/BF16; the quantizer needs FP32
    COMPUTED_WEIGHTS = "computed_weights"  # weights produced by constant subgraphs, not stored


@dataclass(frozen=True)
class Preflight:
    summary: GraphSummary | None
    outcome: Outcome | None  # None: go on and quantize
    reasons: tuple[str, ...] = ()
    fixable: FixableCause | None = None  # the outcome stands unless this pre-fix repairs its cause
    precision: str = "fp32"  # what the float weights mostly are (halfprecision.precision_name)


def preflight(path: Path, *, reach_subgraphs: bool = False) -> Preflight:
    """Load and check ``path``; ``reach_subgraphs``: the search can quantize If/Loop/Scan bodies."""
    try:
        model, uses_external = _load(path)
    except _Refused as refusal:
        return Preflight(None, Outcome.ERROR, (str(refusal),))
    summary = summarize(model, path, uses_external)
    precision = precision_name(model)
    verdict = _rules(model, summary, reach_subgraphs)
    if verdict is not None:
        outcome, reasons, *fixable = verdict
        return Preflight(summary, outcome, reasons, fixable[0] if fixable else None, precision)
    notes = partly_quantized_note(summary)
    try:
        # The path form reads external data itself and copes with > 2 GB models.
        onnx.checker.check_model(str(path))
    except (onnx.checker.ValidationError, ValueError) as exc:
        why = first_line(exc, limit=None)
        reason = f"onnx.checker rejected the model: {why}{_link_advice(why)}"
        return Preflight(summary, Outcome.ERROR, (reason,), precision=precision)
    fold = FixableCause.COMPUTED_WEIGHTS if computed_weight_ops(model) else None
    return Preflight(summary, None, notes, fold, precision)


def _link_advice(why: str) -> str:
    """onnx refuses external data behind a link (its guard against link attacks), which a `cp -l`,
    an rsync --link-dest snapshot or a symlinked data folder makes: say how to give it a file."""
    if "hard link" in why:
        fix = "give the data file a single link (copy it, e.g. cp without -l)"
    elif "symbolic link" in why:
        fix = "replace the symbolic link with the file it points to"
    else:
        return ""
    return f"; {fix}, then `dqd jobs retry ID` (the content is unchanged, so it is not re-queued by itself)"


class _Refused(Exception):
    pass


def _load(path: Path) -> tuple[ModelProto, bool]:
    try:
        size = path.stat().st_size
        model = onnx.load(str(path), load_external_data=False)
    except OSError as exc:
        raise _Refused(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise _Refused(
            f"not a readable ONNX model (not ONNX, or truncated/corrupt): {type(exc).__name__}: {exc}"
        ) from exc
    if not model.HasField("graph") or model.ir_version == 0:
        raise _Refused(
            "not an ONNX model: the file parses but has no graph or IR version (truncated or not ONNX)"
        )
    external = [t for t in all_tensors(model) if t.data_location == TensorProto.EXTERNAL]
    if size > PROTOBUF_LIMIT_BYTES and not external:
        raise _Refused("the model is over 2 GB without external data; re-save it with external data")
    base = path.parent.resolve()
    for tensor in external:
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (base / location).resolve()
        if not target.is_relative_to(base):
            raise _Refused(
                f"refused external data location {location!r} of tensor {tensor.name!r}: "
                "it resolves outside the model's folder"
            )
        if not target.is_file():
            raise _Refused(f"external data file {location!r} of tensor {tensor.name!r} is missing")
    return model, bool(external)


def _rules(
    model: ModelProto, summary: GraphSummary, reach_subgraphs: bool
) -> tuple[Outcome, tuple[str, ...]] | tuple[Outcome, tuple[str, ...], FixableCause] | None:
    ai_onnx = [summary.opsets[d] for d in AI_ONNX_DOMAINS if d in summary.opsets]
    if not ai_onnx:
        domains = ", ".join(sorted(summary.opsets)) or "none"
        return Outcome.SKIPPED, (
            f"no ai.onnx domain (opsets: {domains}): onnxruntime's quantizer has nothing to work on",
        )
    if max(ai_onnx) < MIN_AI_ONNX_OPSET:
        reason = f"ai.onnx opset {max(ai_onnx)} is below {MIN_AI_ONNX_OPSET}, the quantizer's minimum"
        return Outcome.ERROR, (reason,), FixableCause.OLD_OPSET
    half = _half_precision_verdict(model)
    if half is not None:
        return half
    top = sum(summary.quantizable_top_level.values())
    nested = sum(summary.quantizable_in_subgraphs.values())
    found = _quantized_parts(summary)
    if found:
        if top == 0 and (nested == 0 or not reach_subgraphs):
            return Outcome.SKIPPED, (f"already quantized ({found}): nothing float is left to quantize",)
        return None  # partly quantized: what is still float gets quantized (see partly_quantized_note)
    if top == 0 and nested == 0:
        return Outcome.SKIPPED, (
            "nothing quantizable: no MatMul/Conv/Gather/LSTM/Attention with constant float weights",
        )
    if top == 0 and not reach_subgraphs:
        ops = ", ".join(f"{op} {n}" for op, n in sorted(summary.quantizable_in_subgraphs.items()))
        flow = ", ".join(f"{op} {n}" for op, n in sorted(summary.control_flow.items()))
        return Outcome.SKIPPED, (
            f"its quantizable ops ({ops}) sit only inside If/Loop/Scan subgraphs ({flow}); "
            "design mode does not quantize subgraphs; `--search thorough` can reach them (EnableSubgraph)",
        )
    return None


def partly_quantized_note(summary: GraphSummary) -> tuple[str, ...]:
    """For a model that already holds quantized parts and still has float work: what happens to each."""
    found = _quantized_parts(summary)
    if not found:
        return ()
    left = ", ".join(f"{op} {n}" for op, n in sorted(summary.quantizable_top_level.items()))
    return (
        f"already partly quantized ({found}): only the ops with float weights left ({left}) are "
        "quantized; the quantized parts stay as they are",
    )


def _quantized_parts(summary: GraphSummary) -> str:
    """The model's own quantized ops, else its int8 initializers, in words; "" when it has none."""
    ops = sorted(op for op in summary.op_histogram if op in QUANTIZED_OPS or op.startswith("QLinear"))
    int8 = summary.initializer_types.get("int8", 0)
    return ", ".join(ops) if ops else (f"{int8} int8 initializers" if int8 else "")


def summarize(model: ModelProto, path: Path, uses_external: bool = False) -> GraphSummary:
    constants = constant_derived_names(model)
    histogram: Counter[str] = Counter()
    top: Counter[str] = Counter()
    nested: Counter[str] = Counter()
    for graph, depth in walk_graphs(model.graph):
        for node in graph.node:
            histogram[node.op_type] += 1
            if is_quantizable(node, constants):
                (top if depth == 0 else nested)[node.op_type] += 1
    init_types = Counter(_dtype_name(t.data_type) for g, _ in walk_graphs(model.graph) for t in g.initializer)
    constant_nodes = sum(
        1
        for g, _ in walk_graphs(model.graph)
        for n in g.node
        if n.op_type == "Constant"
        and any(a.name == "value" and a.t.data_type in FLOAT_TYPES for a in n.attribute)
    )
    return GraphSummary(
        path=str(path),
        size_bytes=path.stat().st_size if path.exists() else model.ByteSize(),
        ir_version=model.ir_version,
        opsets={op.domain: op.version for op in model.opset_import},
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        inputs=tuple(_tensor_info(v) for v in _graph_inputs(model.graph)),
        outputs=tuple(_tensor_info(v) for v in model.graph.output),
        op_histogram=dict(histogram.most_common()),
        quantizable_top_level=dict(top),
        quantizable_in_subgraphs=dict(nested),
        control_flow={op: histogram[op] for op in CONTROL_FLOW_OPS if histogram[op]},
        initializer_types=dict(init_types),
        constant_node_weights=constant_nodes,
        external_data=uses_external,
        vocab_sizes=embedding_table_sizes(model),
    )


def node_names(path: Path) -> dict[str, str]:
    """Named nodes of every graph, subgraphs included: name → op type (what nodes_to_exclude names)."""
    model = onnx.load(str(path), load_external_data=False)
    graphs = (graph for graph, _ in walk_graphs(model.graph))
    return {node.name: node.op_type for graph in graphs for node in graph.node if node.name}


def _half_precision_verdict(
    model: ModelProto,
) -> tuple[Outcome, tuple[str, ...]] | tuple[Outcome, tuple[str, ...], FixableCause] | None:
    """An error (fixable by widening a copy) when quantizable ops compute in FP16/BF16."""
    if not half_types_in(model):
        return None
    bfloat16 = sorted(n for n, t in boundary_half_types(model).items() if t == TensorProto.BFLOAT16)
    if bfloat16:
        return Outcome.ERROR, (
            f"graph input/output {', '.join(map(repr, bfloat16))} is bfloat16: onnxruntime's Python API "
            "cannot return bfloat16 tensors as arrays, so dqd can run neither this model nor a copy "
            "with its signature; export it with float32 (or float16) inputs and outputs",
        )
    found = quantizable_half_ops(model)
    if not found:
        return None  # half precision only where the quantizer does not look (e.g. cast inputs)
    ops = ", ".join(f"{op} {n}" for op, n in sorted(found.items()))
    return (
        Outcome.ERROR,
        (
            f"quantizable ops compute in half precision ({ops}): onnxruntime's dynamic quantizer "
            "needs FP32 weights",
        ),
        FixableCause.HALF_PRECISION,
    )


def _graph_inputs(graph: GraphProto) -> list[onnx.ValueInfoProto]:
    # IR < 4 lists initializers among the inputs; those are weights, not feeds.
    initializers = {t.name for t in graph.initializer}
    return [v for v in graph.input if v.name not in initializers]


def _tensor_info(value: onnx.ValueInfoProto) -> TensorInfo:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return TensorInfo(value.name, kind or "unknown", None)
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return TensorInfo(value.name, _dtype_name(tensor.elem_type), None)
    dims: list[int | str | None] = []
    for dim in tensor.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(dim.dim_value)
        else:
            dims.append(dim.dim_param or None)
    return TensorInfo(value.name, _dtype_name(tensor.elem_type), tuple(dims))


def _dtype_name(elem_type: int) -> str:
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):
        return TensorProto.DataType.Name(elem_type).lower()
