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

Today's pre-fix: an ai.onnx opset below 10 (the quantizer's floor) is upgraded
with ``onnx.version_converter``, trying :data:`OPSET_TARGETS` in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from onnx import ModelProto

from dqd.errors import ModelError
from dqd.pipeline.inspect import AI_ONNX_DOMAINS
from dqd.text import first_line, without_ort_noise

OPSET_TARGETS = (13, 11, 10)  # newest first: 13 is what today's exporters and the quantizer know best
EQUIVALENCE_RELATIVE_L2 = 1e-4
UPGRADED_NAME = "opset-upgraded.onnx"


@dataclass(frozen=True)
class WorkingCopy:
    """The repaired copy the quantizer reads instead of the source."""

    path: Path
    fix: str  # what was done, for the decision's reasons, e.g. "upgraded ai.onnx opset 9 to 13"
    label: str  # joins VariantSpec.preprocess (and so the variant's file key), e.g. "opset13"


def ai_onnx_opset(model: ModelProto) -> int | None:
    versions = [op.version for op in model.opset_import if op.domain in AI_ONNX_DOMAINS]
    return max(versions) if versions else None


def upgrade_opset(source: Path, work_dir: Path, *, ort_version: str) -> WorkingCopy:
    """A copy of ``source`` at the first of :data:`OPSET_TARGETS` that converts, checks and loads.

    :class:`ModelError` (permanent) when no target works, naming what blocked
    each, or when onnxruntime cannot run the original itself: a copy could be
    made, but never checked against it.
    """
    original = onnx.load(str(source))
    opset = ai_onnx_opset(original)
    target_path = work_dir / UPGRADED_NAME
    tried: list[str] = []
    for target in OPSET_TARGETS:
        try:
            upgraded = _converted(original, target)
            onnx.checker.check_model(upgraded)
            onnx.save_model(upgraded, str(target_path))
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


def _load(path: Path) -> Any:
    from dqd.pipeline.benchmark import create_session

    return create_session(path, threads=1)


def equivalence_failures(metrics: Mapping[str, Mapping[str, float]]) -> list[str]:
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
        elif values.get("relative_l2", 0.0) > EQUIVALENCE_RELATIVE_L2:
            failures.append(f"{name}: relative L2 {values['relative_l2']:.2e} > {EQUIVALENCE_RELATIVE_L2:g}")
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
        failures.extend(equivalence_failures(metrics))
        worst = max([worst, *(m.get("relative_l2", 0.0) for m in metrics.values())])
    if failures:
        raise ModelError(
            f"pre-fix refused: the working copy ({copy.fix}) is not equivalent to the original on "
            f"{described}: " + "; ".join(dict.fromkeys(failures)),
            path=str(copy.path),
        )
    return f"pre-fix: {copy.fix}; equivalent to the original on {described} (worst relative L2 {worst:.1e})"
