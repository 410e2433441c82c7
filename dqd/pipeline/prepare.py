"""Pre-process and pre-fix a model for the quantizer; the result is also the "optimized FP32" candidate.

``quant_pre_process`` fails on most real models in symbolic shape inference, so
it is retried without it, then the raw model is used.  Weights held in
``Constant`` nodes make ``quantize_dynamic`` fail ("Expected X to be an
initializer") or re-quantize them at every run, so they are folded into
initializers whichever path was taken.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import GraphProto, ModelProto

from dqd.modelfile import files_stat, model_files
from dqd.onnxgraph import walk_graphs
from dqd.pipeline.external import save_streaming
from dqd.pipeline.ondisk import OPTIMIZER_FAILED, pre_process_on_disk
from dqd.scratchnames import PREPARE_PREFIX
from dqd.text import first_line

logger = logging.getLogger(__name__)

# Above this the prepared model is written with external data: protobuf refuses
# messages over 2 GB, and the quantizer's own copies double the size.
LARGE_MODEL_BYTES = 1024**3
PREPROCESS_FULL = "pre_process"
PREPROCESS_NO_SYMBOLIC = "pre_process:skip_symbolic_shape"
PREPROCESS_RAW = "raw"
FOLD_SUFFIX = "+fold_constants"


@dataclass(frozen=True)
class PreparedModel:
    path: Path
    preprocess: (
        str  # the path taken, e.g. "pre_process:skip_symbolic_shape+fold_constants"; goes into VariantSpec
    )
    large: bool  # written (and to be written) with external data
    folded_constants: int
    notes: tuple[str, ...]  # why earlier paths failed, or a step of this one was skipped


def is_large(path: Path, threshold_bytes: int | None = None) -> bool:
    """The model and every data file it references weigh more than the threshold."""
    return files_stat(model_files(path))[0] > (threshold_bytes or LARGE_MODEL_BYTES)


def prepare_model(source: Path, work_dir: Path, *, large: bool | None = None) -> PreparedModel:
    """Write the quantizer's input model into ``work_dir`` and say how it was made."""
    large = is_large(source) if large is None else large
    work_dir.mkdir(parents=True, exist_ok=True)
    target = work_dir / "prepared.onnx"
    notes: list[str] = []
    attempts = ((PREPROCESS_FULL, False), (PREPROCESS_NO_SYMBOLIC, True))
    label = PREPROCESS_RAW
    for name, skip_symbolic in attempts:
        try:
            unoptimized = _pre_process(source, target, skip_symbolic_shape=skip_symbolic, large=large)
            if unoptimized:
                notes.append(unoptimized)
            label = name
            break
        except Exception as exc:  # the pre-processor raises anything from AssertionError to KeyError
            notes.append(f"{name} failed: {first_line(exc, with_type=True)}")
            logger.debug("pre-processing path %s failed for %s", name, source, exc_info=True)
    read = target if label != PREPROCESS_RAW else source
    model = onnx.load(str(read), load_external_data=not large)
    folded = fold_constant_weights(model)
    if folded:
        label += FOLD_SUFFIX
    if not large:
        onnx.save_model(model, str(target))
    elif folded or read != target:  # the pre-processed file is already what the quantizer reads
        save_streaming(model, target, [read.parent])
    return PreparedModel(target, label, large, folded, tuple(notes))


def _pre_process(source: Path, target: Path, *, skip_symbolic_shape: bool, large: bool) -> str | None:
    """Pre-process ``source`` into ``target``; why onnxruntime's optimizer was skipped, if it was."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, target = source.resolve(), target.resolve()  # the cwd changes below
    # The pre-processor leaves partial files behind on failure, and symbolic shape
    # inference saves "sym_shape_infer_temp.onnx" plus external data into the *current
    # directory* when it gives up: work in a scratch folder, and make it the cwd (this
    # runs in the isolated child, so changing the process's cwd affects nothing else).
    with (
        tempfile.TemporaryDirectory(prefix=PREPARE_PREFIX, dir=target.parent) as scratch,
        contextlib.chdir(scratch),
    ):
        if large:  # the weights stay on disk (dqd.pipeline.ondisk)
            return pre_process_on_disk(source, target, Path(scratch), skip_symbolic_shape=skip_symbolic_shape)
        out = Path(scratch) / target.name
        with _OptimizerFailure() as failure:
            quant_pre_process(
                str(source),
                str(out),
                skip_symbolic_shape=skip_symbolic_shape,
            )
        model = onnx.load(str(out))
        onnx.save_model(model, str(target))
        return failure.note


class _OptimizerFailure(logging.Handler):
    """quant_pre_process logs its optimizer's failure, then the traceback, and goes on without
    the optimizations; within, its errors come here alone (dqd.pipeline.quiet keeps them out of
    the logs otherwise) so the failure is recorded as the on-disk path records it."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self._logger = logging.getLogger("onnxruntime.quantization.shape_inference")
        self._saved: tuple[int, bool] = (logging.NOTSET, True)  # the logger's level and propagate, within
        self._records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self._records.append(record.getMessage())

    @property
    def note(self) -> str | None:
        failed = next((i for i, text in enumerate(self._records) if "Optimization Failed" in text), None)
        if failed is None:
            return None
        cause = self._records[failed + 1].strip().splitlines()[-1] if failed + 1 < len(self._records) else "?"
        return f"{OPTIMIZER_FAILED}: {cause.removeprefix('onnxruntime.capi.onnxruntime_pybind11_state.')}"

    def __enter__(self) -> _OptimizerFailure:
        self._saved = (self._logger.level, self._logger.propagate)
        self._logger.setLevel(logging.ERROR)
        self._logger.propagate = False
        self._logger.addHandler(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._saved[0])
        self._logger.propagate = self._saved[1]


def fold_constant_weights(model: ModelProto) -> int:
    """Move every ``Constant``-node tensor into its graph's initializers; return how many moved."""
    if model.ir_version < 4:
        return 0  # before IR 4 an initializer must also be a graph input; not worth rewriting those
    # Children first: replacing a graph's node list copies its nodes, so a body folded
    # after its parent would be folded in a detached copy.
    return sum(_fold_graph(graph) for graph, _ in reversed(list(walk_graphs(model.graph))))


def _fold_graph(graph: GraphProto) -> int:
    """Fold this graph's own Constant nodes (not its bodies')."""
    kept = []
    for node in graph.node:
        value = next((a for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and value is not None:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            continue
        kept.append(node)
    folded = len(graph.node) - len(kept)
    if folded:
        del graph.node[:]
        graph.node.extend(kept)
    return folded
