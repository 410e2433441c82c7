"""Advice in a decision's reasons, pure: real samples, static quantization (both search modes)."""

from __future__ import annotations

from pathlib import Path

from dqd.domain import Outcome, VariantSpec, WeightType
from dqd.pipeline.advice import (
    decision_advice,
    design_conv_advice,
    samples_advice,
    samples_file,
    static_quantization_advice,
)
from dqd.pipeline.ladder import ModelTraits
from dqd.pipeline.policy import CandidateMeasurement, decide_design

U8U8 = VariantSpec(WeightType.U8U8)
U8S8 = VariantSpec(WeightType.U8S8)
CNN = {"Conv": 53, "MatMul": 1}
TRANSFORMER = {"MatMul": 48, "Conv": 2}


def measured(spec: VariantSpec, *, passed: bool, source: str, speedup: float | None) -> CandidateMeasurement:
    ci = (speedup * 0.95, speedup * 1.05) if speedup is not None else None
    return CandidateMeasurement(
        spec,
        gate_passed=passed,
        gate_reason="rel L2 0.4 > 0.35",
        gate_source=source,
        speedup=speedup,
        speedup_ci=ci,
    )


def test_the_samples_file_is_named_from_the_model_stem_beside_it() -> None:
    assert samples_file(Path("/srv/models/ppocr-cls.onnx")) == Path("/srv/models/ppocr-cls.samples.npz")
    assert samples_file(Path("/m/bert/1/model.onnx")) == Path("/m/bert/1/model.samples.npz")


def test_a_gate_failure_on_synthetic_inputs_suggests_the_samples_file() -> None:
    steps = [measured(U8U8, passed=False, source="synthetic", speedup=None)]
    (line,) = samples_advice(Path("/srv/models/det.onnx"), ["x", "scale"], steps)
    assert line.startswith("advice: u8u8 failed the accuracy gate on synthetic inputs")
    assert "det.samples.npz beside the model (/srv/models/det.samples.npz" in line
    assert "one array per input: x, scale" in line


def test_no_samples_advice_when_samples_decided_or_the_gate_passed() -> None:
    on_samples = [measured(U8U8, passed=False, source="samples", speedup=None)]
    passed = [measured(U8U8, passed=True, source="synthetic", speedup=1.5)]
    assert samples_advice(Path("m.onnx"), ["x"], on_samples) == []
    assert samples_advice(Path("m.onnx"), ["x"], passed) == []


def test_design_mode_gives_a_conv_heavy_model_kept_in_fp32_the_static_advice() -> None:
    steps = [
        measured(U8U8, passed=True, source="synthetic", speedup=0.57),
        measured(U8S8, passed=False, source="synthetic", speedup=0.12),
    ]
    decision = decide_design(steps, margin=0.05)
    assert decision.outcome is Outcome.KEPT_FP32

    (line,) = design_conv_advice(decision, CNN, steps)

    assert line.startswith("advice: no dynamic variant helps this Conv-heavy model (53 Conv) on this host")
    assert "u8u8 0.57x, u8s8 0.12x (failed the gate)" in line
    assert "quantize_static" in line and "calibration data" in line and 'search = "thorough"' in line


def test_design_mode_gives_no_static_advice_to_transformers_or_a_quantized_cnn() -> None:
    slow = [measured(U8U8, passed=True, source="synthetic", speedup=0.8)]
    fast = [measured(U8U8, passed=True, source="synthetic", speedup=1.6)]
    assert design_conv_advice(decide_design(slow, margin=0.05), TRANSFORMER, slow) == []
    quantized = decide_design(fast, margin=0.05)
    assert quantized.outcome is Outcome.QUANTIZED
    assert design_conv_advice(quantized, CNN, fast) == []


def test_the_ladder_wording_names_the_variant_that_leaves_conv_in_fp32() -> None:
    (line,) = static_quantization_advice(
        ModelTraits(top_level=CNN), ["u8u8 0.57x"], leaves_conv_in_fp32="u8s8-matmul"
    )
    assert line.startswith("advice: u8s8-matmul leaves this Conv-heavy model's 53 Conv in FP32")
    assert static_quantization_advice(ModelTraits(top_level=TRANSFORMER), []) == []


def test_the_engine_gives_conv_advice_itself_only_in_design_mode() -> None:
    steps = [measured(U8U8, passed=False, source="synthetic", speedup=0.5)]
    decision = decide_design(steps, margin=0.05)
    cnn = Path("/m/cnn.onnx")

    design = decision_advice(decision, steps, model_path=cnn, input_names=["x"], quantizable=CNN, design=True)
    ladder = decision_advice(
        decision, steps, model_path=cnn, input_names=["x"], quantizable=CNN, design=False
    )

    assert [line.split(" ")[1] for line in design] == ["u8u8", "no"]  # samples first, then static
    assert len(ladder) == 1 and "cnn.samples.npz" in ladder[0]
