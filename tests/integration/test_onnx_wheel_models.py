"""Third-party models dqd was not developed against: a fixed subset of the installed onnx wheel's
test data (issue 11), through one real `dqd process`. Only what timing cannot flip is asserted:
every model ends with an outcome, none in `error` except where onnxruntime cannot run the original
itself (checked here independently; the reason says exactly that), and each old-opset model
that was decided records its pre-fix.

The whole sweep (149 models) is `python tests/perf/sweep_onnx_wheel.py`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

from tests.integration.test_pipeline_cli import run_process

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
# Old opsets (6 and 9, IR 3), constants computed at run time (light/), Conv, Linear, Pad, an embedding.
SUBSET = (
    "light/light_squeezenet.onnx",
    "light/light_shufflenet.onnx",
    "pytorch-converted/test_Conv1d/model.onnx",
    "pytorch-converted/test_Conv2d/model.onnx",
    "pytorch-converted/test_Conv2d_depthwise/model.onnx",
    "pytorch-converted/test_ConvTranspose2d/model.onnx",
    "pytorch-converted/test_Linear/model.onnx",
    "pytorch-converted/test_Linear_no_bias/model.onnx",
    "pytorch-converted/test_ConstantPad2d/model.onnx",
    "pytorch-converted/test_ReflectionPad2d/model.onnx",
    "pytorch-converted/test_Embedding/model.onnx",
    "pytorch-converted/test_BatchNorm2d_eval/model.onnx",
    "pytorch-converted/test_PReLU_2d/model.onnx",
    "pytorch-converted/test_Softmax/model.onnx",
    "pytorch-operator/test_operator_conv/model.onnx",
    "pytorch-operator/test_operator_pad/model.onnx",
    "pytorch-operator/test_operator_permute2/model.onnx",
    "pytorch-operator/test_operator_mm/model.onnx",  # Gemm(6): onnxruntime cannot run the original
    "simple/test_sign_model/model.onnx",
    "simple/test_single_relu_model/model.onnx",
)
UNRUNNABLE = "cannot run the original FP32 model"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="this onnx wheel ships no backend test data")


def onnxruntime_loads(path: Path) -> bool:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception:
        return False
    return True


def copied(tmp_path: Path) -> Path:
    folder = tmp_path / "wheel"
    for rel in SUBSET:
        source = DATA / rel
        name = source.stem if source.name != "model.onnx" else source.parent.name
        target = folder / Path(rel).parts[0] / f"{name}.onnx"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return folder


def test_every_model_of_the_subset_gets_a_decision_and_its_pre_fix(tmp_path: Path) -> None:
    done = run_process(tmp_path, str(copied(tmp_path)), "--json")
    results = {Path(r["path"]).stem: r for r in map(json.loads, done.stdout.splitlines())}

    assert len(results) == len(SUBSET), done.stderr[-2000:]
    errors = {name: r["error"] for name, r in results.items() if r["outcome"] == "error"}
    unrunnable = {name for name, r in results.items() if not onnxruntime_loads(Path(r["path"]))}
    assert errors.keys() == unrunnable, errors  # an error only where onnxruntime cannot run the original
    assert all(UNRUNNABLE in error for error in errors.values()), errors
    assert "Gemm(6)" in errors["test_operator_mm"]
    assert len(results) - len(errors) >= 14  # the rest are decided
    for name, result in results.items():
        opset = next(o.version for o in onnx.load(result["path"]).opset_import if o.domain in ("", "ai.onnx"))
        if opset < 10 and result["outcome"] != "error":
            fixes = [r for r in result["reasons"] if r.startswith("pre-fix: upgraded ai.onnx opset")]
            assert fixes, (name, result["reasons"])
            # The first reason is what `dqd models` shows: why it was skipped or kept, not the fix.
            assert not result["reasons"][0].startswith("pre-fix"), (name, result["reasons"])
