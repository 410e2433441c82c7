"""Pre-fixes on working copies (real onnx converter, real onnxruntime): old opsets upgraded,
the source untouched, and a copy that changes the outputs refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from dqd.errors import ModelError
from dqd.pipeline.inspect import FixableCause, preflight
from dqd.pipeline.prefix import (
    WorkingCopy,
    ai_onnx_opset,
    check_equivalent,
    fold_computed_weights,
    upgrade_opset,
)
from dqd.pipeline.weights import computed_weight_ops
from tests import models

ORT = ort.__version__


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outputs(path: Path, feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [session.run(None, feed) for feed in feeds]


def feeds(shape: tuple[int, ...], count: int = 3) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(count)]


def test_an_opset_9_model_is_upgraded_to_13_and_the_source_is_untouched(tmp_path: Path) -> None:
    source = models.save(models.old_opset(), tmp_path / "old.onnx")
    before = digest(source)
    work = tmp_path / "work"
    work.mkdir()

    copy = upgrade_opset(source, work, ort_version=ORT)

    assert digest(source) == before
    assert copy.label == "opset13" and copy.fix.startswith("upgraded ai.onnx opset 9 to 13")
    assert ai_onnx_opset(onnx.load(str(copy.path))) == 13 and copy.path.parent == work
    runs = feeds((2, 8))
    reason = check_equivalent(copy, ["y"], [outputs(source, runs)], [runs], described="the synthetic inputs")
    assert reason.startswith("pre-fix: upgraded ai.onnx opset 9 to 13") and "equivalent" in reason


@pytest.mark.parametrize("listed", [True, False], ids=["weights-listed", "weights-unlisted"])
def test_an_ir3_pad_model_gets_a_valid_upgraded_copy(tmp_path: Path, listed: bool) -> None:
    """IR 3 forbids initializers that are not graph inputs; Pad's adapter adds one."""
    source = models.save(models.ir3_pad_then_matmul(weights_listed=listed), tmp_path / "pad.onnx")
    copy = upgrade_opset(source, tmp_path, ort_version=ORT)

    upgraded = onnx.load(str(copy.path))
    onnx.checker.check_model(upgraded)
    assert ai_onnx_opset(upgraded) == 13 and upgraded.ir_version >= 7
    # The weight is a constant now, not an overridable input: the quantizer can take it.
    assert [i.name for i in upgraded.graph.input] == ["x"]
    runs = feeds((2, 4))
    check_equivalent(copy, ["y"], [outputs(source, runs)], [runs], described="the synthetic inputs")


def test_an_original_onnxruntime_cannot_run_is_an_error_saying_exactly_that(tmp_path: Path) -> None:
    source = models.save(models.old_broadcast_add(), tmp_path / "add.onnx")
    with pytest.raises(ModelError) as caught:
        upgrade_opset(source, tmp_path, ort_version=ORT)
    message = str(caught.value)
    assert message.startswith(f"onnxruntime {ORT} cannot run the original FP32 model (ai.onnx opset 6)")
    assert "Add(6)" in message and caught.value.permanent


def test_a_model_no_target_converts_is_an_error_naming_the_op(tmp_path: Path) -> None:
    source = models.save(models.old_unknown_op(), tmp_path / "odd.onnx")
    with pytest.raises(ModelError) as caught:
        upgrade_opset(source, tmp_path, ort_version=ORT)
    message = str(caught.value)
    assert "could not upgrade a copy" in message and "Frobnicate" in message
    assert all(f"opset {target}:" in message for target in (13, 11, 10))


def test_a_copy_that_changes_the_outputs_is_refused(tmp_path: Path) -> None:
    """As a converter bug would: the 'upgraded' copy carries other weights."""
    source = models.save(models.old_opset(), tmp_path / "old.onnx")
    wrong = models.old_opset()
    weight = wrong.graph.initializer[0]
    values = onnx.numpy_helper.to_array(weight) * 1.01
    weight.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float32), weight.name))
    wrong.opset_import[0].version = 13
    copy = WorkingCopy(
        models.save(wrong, tmp_path / "wrong.onnx"), "upgraded (a broken converter)", "opset13"
    )

    runs = feeds((2, 8))
    with pytest.raises(ModelError) as caught:
        check_equivalent(copy, ["y"], [outputs(source, runs)], [runs], described="the synthetic inputs")
    assert "is not equivalent to the original on the synthetic inputs (y: relative L2 1.00e-02" in str(
        caught.value
    )


def test_computed_weights_are_folded_into_initializers_and_checked(tmp_path: Path) -> None:
    source = models.save(models.computed_conv_weights(), tmp_path / "conv.onnx")
    assert preflight(source).fixable is FixableCause.COMPUTED_WEIGHTS
    before = digest(source)

    copy = fold_computed_weights(source, tmp_path, ort_version=ORT)

    assert digest(source) == before and copy.label == "folded"
    assert copy.fix.startswith("folded the computed weights of Conv 1 into initializers")
    folded = onnx.load(str(copy.path))
    assert computed_weight_ops(folded) == {} and preflight(copy.path).fixable is None
    conv = next(n for n in folded.graph.node if n.op_type == "Conv")
    assert conv.input[1] in {t.name for t in folded.graph.initializer}
    runs = feeds((2, 4, 16, 16))
    reason = check_equivalent(copy, ["y"], [outputs(source, runs)], [runs], described="the synthetic inputs")
    assert "equivalent to the original" in reason


def test_a_fold_that_changes_a_weight_is_refused(tmp_path: Path) -> None:
    """As a folding bug would: the folded Conv weight is off by 1 %."""
    source = models.save(models.computed_conv_weights(), tmp_path / "conv.onnx")
    copy = fold_computed_weights(source, tmp_path, ort_version=ORT)
    wrong = onnx.load(str(copy.path))
    conv = next(n for n in wrong.graph.node if n.op_type == "Conv")
    weight = next(t for t in wrong.graph.initializer if t.name == conv.input[1])
    weight.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(weight) * 1.01, weight.name))
    broken = WorkingCopy(models.save(wrong, tmp_path / "wrong.onnx"), copy.fix, copy.label)

    runs = feeds((2, 4, 16, 16))
    with pytest.raises(ModelError, match=r"is not equivalent to the original on the synthetic inputs \(y: "):
        check_equivalent(broken, ["y"], [outputs(source, runs)], [runs], described="the synthetic inputs")


def test_weights_computed_only_inside_bodies_are_left_to_pre_processing(tmp_path: Path) -> None:
    model = models.matmul_only_in_subgraphs()
    assert computed_weight_ops(model) == {}
    stored = models.save(models.matmul_heavy(hidden=16, layers=1), tmp_path / "stored.onnx")
    assert preflight(stored).fixable is None
