"""Issue 11 through the real engine: an old-opset model decided on an upgraded working copy,
a model whose dynamic height must be 48 decided on probed shapes (real onnxruntime)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
from onnx import TensorProto

from dqd.domain import Outcome
from dqd.hostinfo import detect_host
from dqd.pipeline.engine import process_model
from dqd.serialize import catalog_details_json
from tests import models
from tests.fast import fast_settings


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_opset_9_model_is_decided_on_an_upgraded_copy_and_says_so(tmp_path: Path) -> None:
    old = models.matmul_heavy(hidden=64, layers=2)
    old.opset_import[0].version = 9
    source = models.save(old, tmp_path / "old.onnx")
    before = digest(source)

    result = process_model(source, fast_settings(tmp_path), host=detect_host())

    assert result.outcome is not Outcome.ERROR, result.reasons
    assert digest(source) == before  # the source is never touched
    fixes = [r for r in result.reasons if r.startswith("pre-fix: upgraded ai.onnx opset 9 to 13")]
    assert fixes and "equivalent to the original on the synthetic inputs" in fixes[0]
    assert result.variants and all(v.spec.preprocess.startswith("opset13+") for v in result.variants)
    assert catalog_details_json(result.details)["preflight"]["opsets"] == {"": 9}  # the original's
    assert not list((tmp_path / "out").rglob("opset-upgraded.onnx"))  # the working copy is scratch


def test_a_model_whose_height_must_be_48_runs_on_probed_shapes(tmp_path: Path) -> None:
    source = models.save(models.runs_only_at_height(48), tmp_path / "rec.onnx")

    result = process_model(source, fast_settings(tmp_path), host=detect_host())

    assert result.outcome is not Outcome.ERROR, result.reasons
    (note,) = [r for r in result.reasons if r.startswith("synthetic inputs: ")]
    assert "x[4, 3, 48, " in note and "after FP32 failed on x[4, 3, 224, 224]" in note
    inputs = catalog_details_json(result.details)["inputs"]
    assert inputs[0]["description"].endswith("(probed)")


def test_shapes_the_user_set_are_not_probed_away(tmp_path: Path) -> None:
    source = models.save(models.runs_only_at_height(48), tmp_path / "rec.onnx")
    settings = fast_settings(tmp_path, **{"accuracy.input_shapes": {"x": [4, 3, 224, 224]}})

    result = process_model(source, settings, host=detect_host())

    assert result.outcome is Outcome.ERROR
    assert result.error is not None and "and on no other shape (no dynamic dim left to vary)" in result.error


def test_an_fp16_model_is_decided_on_a_widened_copy_and_keeps_its_precision_on_record(
    tmp_path: Path,
) -> None:
    source = models.save(models.half_mlp(64, 2), tmp_path / "half.onnx")
    before = digest(source)

    result = process_model(source, fast_settings(tmp_path), host=detect_host())

    assert result.outcome is not Outcome.ERROR, result.reasons
    assert digest(source) == before
    assert result.source_precision == "fp16"
    assert "FP32 in these reasons stands for the model as given: the FP16 original" in result.reasons
    assert not result.reasons[0].startswith("kept FP32")  # "kept the FP16 original: …" if kept
    (fix,) = [r for r in result.reasons if r.startswith("pre-fix: widened FP16 to FP32")]
    assert "equivalent to the original on the synthetic inputs" in fix and "allowed 0.01" in fix
    assert result.variants and all(v.spec.preprocess.startswith("fp32+") for v in result.variants)
    for variant in result.variants:  # drop-in replacements: fed and read as FP16, like the original
        assert variant.output_path is not None
        graph = onnx.load(variant.output_path).graph
        assert {v.type.tensor_type.elem_type for v in [*graph.input, *graph.output]} == {TensorProto.FLOAT16}


def test_a_bf16_model_onnxruntime_cannot_run_is_judged_against_its_fp32_copy_and_says_so(
    tmp_path: Path,
) -> None:
    source = models.save(models.half_mlp(64, 2, elem=TensorProto.BFLOAT16), tmp_path / "bf.onnx")

    result = process_model(source, fast_settings(tmp_path), host=detect_host())

    assert result.outcome is not Outcome.ERROR, result.reasons
    assert result.source_precision == "bf16"
    (fix,) = [r for r in result.reasons if r.startswith("pre-fix: widened BF16 to FP32")]
    assert "cannot run the BF16 original on its CPU provider" in fix
    assert "gated and timed against the FP32 working copy" in fix


def test_a_widening_that_changes_what_the_model_computes_is_refused(tmp_path: Path) -> None:
    source = models.save(models.fp16_saturating(), tmp_path / "sat.onnx")

    result = process_model(source, fast_settings(tmp_path), host=detect_host())

    assert result.outcome is Outcome.ERROR and result.error is not None
    assert result.error.startswith(
        "pre-fix refused: the working copy is not equivalent to the original on the synthetic inputs "
        "(y: relative L2 1.00e+00 > 0.01); the fix was: widened FP16 to FP32"
    )


def test_computed_weights_are_folded_on_a_working_copy_and_the_model_decided(tmp_path: Path) -> None:
    source = models.save(models.computed_conv_weights(), tmp_path / "conv.onnx")

    result = process_model(source, fast_settings(tmp_path), host=detect_host())

    assert result.outcome is not Outcome.ERROR, result.reasons
    (fix,) = [r for r in result.reasons if r.startswith("pre-fix: folded the computed weights of Conv 1")]
    assert "equivalent to the original on the synthetic inputs" in fix
    assert result.variants and all(v.spec.preprocess.startswith("folded+") for v in result.variants)
