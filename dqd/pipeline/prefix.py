"""Pre-fixes: repairs on a working copy that let the quantizer take a model it would refuse.

The source is never modified. A pre-fix runs only where preflight found its
cause (:attr:`dqd.pipeline.inspect.Preflight.fixable`), so a model that needs
none decides exactly as before. Its working copy must be equivalent to the
original on the same inputs the variants are judged on (relative L2 at most
:data:`EQUIVALENCE_RELATIVE_L2` per float output, integer outputs exact),
checked by :func:`check_equivalent` once FP32's reference outputs exist; the
copy is then what pre-processing and the quantizer read, while the original
stays the FP32 every variant is gated and timed against, and the file to load
when no variant wins.

The pre-fixes, in the order preflight finds their causes (:func:`repair`):

- an ai.onnx opset below 10 (the quantizer's floor) is upgraded with
  ``onnx.version_converter``, trying :data:`OPSET_TARGETS` in order;
- weights computed by constant subgraphs (``Reshape(Constant)``, ``ConstantOfShape``,
  ``Cast`` chains, as onnx's light/ models hold them) are folded into initializers by
  onnxruntime's basic offline optimization, which also fuses Conv+BatchNorm and the
  like: one more reason to run it only where preflight finds computed weights;
- a model computing in FP16/BF16 is widened to FP32
  (:mod:`dqd.pipeline.halfprecision`). The copy cannot match an FP16 original
  to 1e-4, the original's own rounding being larger, so it is held to
  :data:`WIDENING_RELATIVE_L2` instead; where onnxruntime cannot run the
  original at all (most BF16 graphs on CPU) the copy stands in for it as the
  reference and the baseline, and the reasons say so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from onnx import ModelProto

from dqd.errors import ModelError
from dqd.pipeline.external import inline_small_tensors, save_streaming
from dqd.pipeline.halfprecision import HALF_TYPES, half_types_in, widened
from dqd.pipeline.inspect import AI_ONNX_DOMAINS, FixableCause
from dqd.pipeline.ondisk import optimize_on_disk
from dqd.pipeline.weights import computed_weight_ops
from dqd.text import first_line, without_ort_noise

OPSET_TARGETS = (13, 11, 10)  # newest first: 13 is what today's exporters and the quantizer know best
EQUIVALENCE_RELATIVE_L2 = 1e-4
# A few units of each format's rounding (FP16 2^-11, BF16 2^-8) grown over a deep graph's layers;
# a wrong widening (mis-read bits, a lost Cast) is off by orders of magnitude more.
WIDENING_RELATIVE_L2 = {"fp16": 1e-2, "bf16": 5e-2}
UPGRADED_NAME = "opset-upgraded.onnx"
WIDENED_NAME = "widened-fp32.onnx"
FOLDED_NAME = "weights-folded.onnx"


@dataclass(frozen=True)
class WorkingCopy:
    """The repaired copy the quantizer reads instead of the source."""

    path: Path
    fix: str  # what was done, for the decision's reasons, e.g. "upgraded ai.onnx opset 9 to 13"
    label: str  # joins VariantSpec.preprocess (and so the variant's file key), e.g. "opset13"
    tolerance: float = EQUIVALENCE_RELATIVE_L2  # relative L2 per float output the copy may differ by
    original_unrunnable: str | None = None  # why onnxruntime cannot run the original: the copy stands in

    def then(self, later: WorkingCopy) -> WorkingCopy:
        """This fix followed by ``later`` (made from this copy): one copy, both fixes on record."""
        return WorkingCopy(
            later.path,
            f"{self.fix}; then {later.fix.replace(' on a working copy', '')}",
            f"{self.label}+{later.label}",
            max(self.tolerance, later.tolerance),
            self.original_unrunnable or later.original_unrunnable,
        )


def repair(
    cause: FixableCause, source: Path, work_dir: Path, *, ort_version: str, large: bool = False
) -> WorkingCopy:
    """The working copy that repairs ``cause`` in ``source`` (the original, or an earlier copy).

    ``large``: the copy keeps its weights in ``<name>.data`` (protobuf refuses a model over 2 GB),
    and they are read from disk, not loaded with the graph (dqd.pipeline.external).
    """
    if cause is FixableCause.OLD_OPSET:
        return upgrade_opset(source, work_dir, ort_version=ort_version, large=large)
    if cause is FixableCause.COMPUTED_WEIGHTS:
        return fold_computed_weights(source, work_dir, ort_version=ort_version, large=large)
    return widen_precision(source, work_dir, ort_version=ort_version, large=large)


def fold_computed_weights(
    source: Path, work_dir: Path, *, ort_version: str, large: bool = False
) -> WorkingCopy:
    """A copy of ``source`` with its computed weights folded (onnxruntime, basic level, offline).

    :class:`ModelError` (permanent) when onnxruntime cannot load the model to optimize it.
    """
    import onnxruntime as ort

    computed = computed_weight_ops(onnx.load(str(source), load_external_data=False))
    target_path = work_dir / FOLDED_NAME
    try:
        if large:  # the graph alone is loaded; onnxruntime reads the weights from the source's folder
            graph = onnx.load(str(source), load_external_data=False)
            inline_small_tensors(graph, source.parent)
            optimize_on_disk(graph, source.parent, target_path)
        else:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = str(target_path)
            options.log_severity_level = 3
            ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        why = without_ort_noise(first_line(exc))
        raise ModelError(
            f"onnxruntime {ort_version} cannot run the original FP32 model to fold its computed weights: "
            f"{why}",
            path=str(source),
        ) from exc
    ops = ", ".join(f"{op} {n}" for op, n in sorted(computed.items()))
    fix = (
        f"folded the computed weights of {ops} into initializers on a working copy "
        "(onnxruntime basic offline optimization, which also fuses e.g. Conv+BatchNorm)"
    )
    return WorkingCopy(target_path, fix, "folded")


def ai_onnx_opset(model: ModelProto) -> int | None:
    versions = [op.version for op in model.opset_import if op.domain in AI_ONNX_DOMAINS]
    return max(versions) if versions else None


def upgrade_opset(source: Path, work_dir: Path, *, ort_version: str, large: bool = False) -> WorkingCopy:
    """A copy of ``source`` at the first of :data:`OPSET_TARGETS` that converts, checks and loads.

    :class:`ModelError` (permanent) when no target works, naming what blocked
    each, or when onnxruntime cannot run the original itself: a copy could be
    made, but never checked against it.
    """
    original = onnx.load(str(source), load_external_data=not large)
    opset = ai_onnx_opset(original)
    target_path = work_dir / UPGRADED_NAME
    tried: list[str] = []
    for target in OPSET_TARGETS:
        try:
            upgraded = _converted(original, target)
            _checked_save(upgraded, target_path, source, large=large)
            _load(target_path)
        except Exception as exc:  # the converter raises anything from RuntimeError to ValidationError
            tried.append(f"opset {target}: {first_line(exc, with_type=True)}")
            continue
        break
    else:
        raise ModelError(
            f"ai.onnx opset {opset} is below 10 and onnx.version_converter could not upgrade a copy: "
            + "; ".join(tried),
            path=str(source),
        )
    try:
        _load(source)
    except Exception as exc:
        why = without_ort_noise(first_line(exc))
        raise ModelError(
            f"onnxruntime {ort_version} cannot run the original FP32 model (ai.onnx opset {opset}): "
            f"{why}; a copy upgraded to opset {target} loads, but dqd never ships a copy "
            "it cannot check against the original",
            path=str(source),
        ) from exc
    fix = f"upgraded ai.onnx opset {opset} to {target} on a working copy (onnx.version_converter)"
    return WorkingCopy(target_path, fix, f"opset{target}")


def widen_precision(source: Path, work_dir: Path, *, ort_version: str, large: bool = False) -> WorkingCopy:
    """A copy of ``source`` computing in FP32 (:func:`dqd.pipeline.halfprecision.widened`).

    :class:`ModelError` (permanent) when the copy does not pass the checker or load.
    """
    original = onnx.load(str(source), load_external_data=not large)
    halves = sorted(HALF_TYPES[t] for t in half_types_in(original))
    named = "/".join(name.upper() for name in halves)
    target_path = work_dir / WIDENED_NAME
    try:
        # A large model's half tensors are read from disk one by one (onnx reads an external
        # tensor relative to the cwd); their FP32 copies are held until saved.
        with contextlib.chdir(source.parent) if large else contextlib.nullcontext():
            copy = widened(original)
        _checked_save(copy, target_path, source, large=large)
        _load(target_path)
    except Exception as exc:
        raise ModelError(
            f"quantizable ops compute in {named} and a copy widened to FP32 does not work: "
            f"{without_ort_noise(first_line(exc, with_type=True))}",
            path=str(source),
        ) from exc
    unrunnable = None
    try:
        _load(source)
    except Exception as exc:
        why = without_ort_noise(first_line(exc))
        unrunnable = f"onnxruntime {ort_version} cannot run the {named} original on its CPU provider ({why})"
    fix = f"widened {named} to FP32 on a working copy (graph inputs and outputs keep their types via Cast)"
    tolerance = max(WIDENING_RELATIVE_L2[name] for name in halves)
    return WorkingCopy(target_path, fix, "fp32", tolerance, unrunnable)


def _converted(original: ModelProto, target: int) -> ModelProto:
    from onnx import version_converter

    if original.ir_version < 4:
        original = _initializers_listed(original)
    upgraded = version_converter.convert_version(original, target)
    # The converter keeps the IR version; adapters that add initializers (Pad's pads input)
    # then break IR < 4's rule that every initializer is also a graph input.
    minimum = onnx.helper.find_min_ir_version_for(list(upgraded.opset_import), ignore_unknown=True)
    upgraded.ir_version = max(upgraded.ir_version, minimum)
    # From IR 4 on, an initializer listed as a graph input is an overridable default: the
    # quantizer leaves such weights alone. Before IR 4 every initializer had to be listed.
    initializers = {tensor.name for tensor in upgraded.graph.initializer}
    inputs = [value for value in upgraded.graph.input if value.name not in initializers]
    del upgraded.graph.input[:]
    upgraded.graph.input.extend(inputs)
    return upgraded


def _initializers_listed(model: ModelProto) -> ModelProto:
    """IR < 4 needs every initializer among the graph inputs; some old exporters left them out."""
    listed = {value.name for value in model.graph.input}
    missing = [tensor for tensor in model.graph.initializer if tensor.name not in listed]
    if not missing:
        return model
    fixed = ModelProto()
    fixed.CopyFrom(model)
    for tensor in missing:
        fixed.graph.input.append(
            onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
        )
    return fixed


def _checked_save(model: ModelProto, path: Path, source: Path, *, large: bool) -> None:
    """``model`` through onnx's checker and saved at ``path``. A large copy's tensors go to
    ``<name>.data`` (those it shares with ``source`` copied from its folder), and the checker
    reads the saved file: in memory it would look for the data in the cwd."""
    if large:
        save_streaming(model, path, [source.parent])
        onnx.checker.check_model(str(path))
    else:
        onnx.checker.check_model(model)
        onnx.save_model(model, str(path))


def _load(path: Path) -> Any:
    from dqd.pipeline.benchmark import create_session

    return create_session(path, threads=1)


def equivalence_failures(
    metrics: Mapping[str, Mapping[str, float]], tolerance: float = EQUIVALENCE_RELATIVE_L2
) -> list[str]:
    """Why a working copy's outputs are not the original's (empty: equivalent). Pure.

    ``metrics`` as :func:`dqd.pipeline.accuracy.compare_outputs` computes them.
    """
    failures = []
    for name, values in metrics.items():
        if "shape_mismatch" in values:
            failures.append(f"{name}: another shape")
        elif "non_finite" in values:
            failures.append(f"{name}: non-finite values the original does not have")
        elif "agreement" in values and values["agreement"] < 1.0:
            failures.append(f"{name}: {1 - values['agreement']:.2%} of its integer values differ")
        elif values.get("relative_l2", 0.0) > tolerance:
            failures.append(f"{name}: relative L2 {values['relative_l2']:.2e} > {tolerance:g}")
    return failures


def check_equivalent(
    copy: WorkingCopy,
    names: Sequence[str],
    references: Sequence[Sequence[Sequence[Any]]],
    feeds: Sequence[Sequence[Mapping[str, Any]]],
    *,
    described: str,
) -> str:
    """The reason to record once the copy matches the original; :class:`ModelError` if it does not.

    ``references``: the original's outputs for each input set's ``feeds``; ``described``
    names the inputs for people (e.g. "the synthetic inputs").
    """
    from dqd.pipeline.accuracy import compare_outputs

    session = _load(copy.path)
    worst = 0.0
    failures: list[str] = []
    for reference, set_feeds in zip(references, feeds, strict=True):
        candidate = [session.run(None, dict(feed)) for feed in set_feeds]
        metrics = compare_outputs(names, reference, candidate)
        failures.extend(equivalence_failures(metrics, copy.tolerance))
        worst = max([worst, *(m.get("relative_l2", 0.0) for m in metrics.values())])
    if failures:
        raise ModelError(
            f"pre-fix refused: the working copy is not equivalent to the original on {described} "
            f"({'; '.join(dict.fromkeys(failures))}); the fix was: {copy.fix}",
            path=str(copy.path),
        )
    allowed = "" if copy.tolerance == EQUIVALENCE_RELATIVE_L2 else f", allowed {copy.tolerance:g}"
    return (
        f"pre-fix: {copy.fix}; equivalent to the original on {described} "
        f"(worst relative L2 {worst:.1e}{allowed})"
    )


def stand_in_note(copy: WorkingCopy) -> str:
    """The reason to record when the copy stands in for an original onnxruntime cannot run."""
    return (
        f"pre-fix: {copy.fix}; {copy.original_unrunnable}, so the variants are gated and timed "
        "against the FP32 working copy, which could not be checked against the original"
    )
