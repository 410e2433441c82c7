"""The design two-step over every combination of what U8U8 and U8S8 can measure."""

from __future__ import annotations

import itertools

import pytest

from dqd.domain import Outcome, VariantSpec, WeightType
from dqd.pipeline.policy import (
    POLICY_VERSION,
    CandidateMeasurement,
    Speed,
    classify_speed,
    decide_design,
    decide_pinned,
    describe,
    design_specs,
    is_acceptable,
    next_design_step,
)
from dqd.records import DesignRecord

MARGIN = 0.05
U8U8, U8S8 = design_specs("raw")

# Speed-up intervals, one per class (margin 5 %), plus "the benchmark failed".
INTERVALS: dict[str, tuple[float, float] | None] = {
    "faster": (1.20, 1.30),
    "unresolved": (1.01, 1.10),
    "not_faster": (1.00, 1.04),
    "slower": (0.60, 0.70),
    "bench_error": None,
}
STATES = ["quantize_error"] + [f"{gate}/{speed}" for gate in ("pass", "fail") for speed in INTERVALS]


def measure(spec: VariantSpec, state: str) -> CandidateMeasurement:
    if state == "quantize_error":
        return CandidateMeasurement(spec, quantize_error="Expected w to be an initializer")
    gate, speed = state.split("/")
    ci = INTERVALS[speed]
    return CandidateMeasurement(
        spec,
        gate_passed=gate == "pass",
        gate_reason="cosine mean 0.99" if gate == "pass" else "cosine mean 0.75 < 0.95",
        gate_source="samples",
        speedup=None if ci is None else sum(ci) / 2,
        speedup_ci=ci,
        benchmark_error="session failed" if ci is None else None,
    )


def wins(state: str) -> bool:
    return state == "pass/faster"


@pytest.mark.parametrize(("first", "second"), list(itertools.product(STATES, STATES)))
def test_two_step_over_every_combination(first: str, second: str) -> None:
    u8u8 = measure(U8U8, first)
    steps = [u8u8] if wins(first) else [u8u8, measure(U8S8, second)]

    decision = decide_design(steps, margin=MARGIN)

    assert decision.policy_version == POLICY_VERSION
    if wins(first):
        assert (decision.outcome, decision.selected) == (Outcome.QUANTIZED, U8U8)
        assert decision.speedup_ci == INTERVALS["faster"]
    elif wins(second):
        assert (decision.outcome, decision.selected) == (Outcome.QUANTIZED, U8S8)
        assert decision.speedup is not None
    else:
        assert decision.outcome is Outcome.KEPT_FP32
        assert decision.selected is None and decision.speedup is None and decision.speedup_ci is None
        assert decision.reasons[0].startswith("kept FP32: ")
    # Every measured step is named with its numbers, in order.
    named = [r for r in decision.reasons if r.startswith(("U8U8:", "U8S8:"))]
    assert [r[:4] for r in named] == [m.spec.name.upper() for m in steps]
    for reason, step in zip(named, steps, strict=True):
        if step.speedup is not None:
            assert f"{step.speedup:.2f}x" in reason
        if step.quantize_error:
            assert "quantization failed" in reason
    assert len(decision.record.steps) == len(steps)


@pytest.mark.parametrize("state", STATES)
def test_next_step_follows_the_design(state: str) -> None:
    u8u8 = measure(U8U8, state)
    assert next_design_step([], margin=MARGIN) is WeightType.U8U8
    assert next_design_step([u8u8], margin=MARGIN) is (None if wins(state) else WeightType.U8S8)
    assert next_design_step([u8u8, measure(U8S8, state)], margin=MARGIN) is None


def test_u8u8_wins_even_when_u8s8_is_faster() -> None:
    fast_u8s8 = CandidateMeasurement(U8S8, gate_passed=True, speedup=3.0, speedup_ci=(2.9, 3.1))
    decision = decide_design([measure(U8U8, "pass/faster"), fast_u8s8], margin=MARGIN)
    assert decision.selected == U8U8


def test_reasons_say_slower_when_both_are_slower() -> None:
    decision = decide_design([measure(U8U8, "pass/slower"), measure(U8S8, "pass/slower")], margin=MARGIN)
    assert decision.reasons[0] == "kept FP32: u8u8, u8s8 slower than FP32"


def test_needs_a_measurement() -> None:
    with pytest.raises(ValueError):
        decide_design([], margin=MARGIN)


@pytest.mark.parametrize(
    ("ci", "expected"),
    [
        ((1.05, 1.2), Speed.FASTER),  # the slow end exactly at the margin counts
        ((1.049, 1.2), Speed.UNRESOLVED),
        ((0.99, 1.049), Speed.NOT_FASTER),
        ((0.5, 0.999), Speed.SLOWER),
        ((0.9, 1.0), Speed.NOT_FASTER),
    ],
)
def test_speed_classes(ci: tuple[float, float], expected: Speed) -> None:
    assert classify_speed(ci, MARGIN) is expected


def test_margin_is_configurable() -> None:
    m = CandidateMeasurement(U8U8, gate_passed=True, speedup=1.12, speedup_ci=(1.08, 1.15))
    assert is_acceptable(m, 0.05)
    assert not is_acceptable(m, 0.10)
    assert "needs >= 1.10x" in describe(m, 0.10)


def test_unmeasured_gate_is_not_acceptable() -> None:
    m = CandidateMeasurement(U8U8, speedup=2.0, speedup_ci=(1.9, 2.1))
    assert not is_acceptable(m, MARGIN)
    assert "accuracy not measured" in describe(m, MARGIN)


def test_design_specs_use_default_options_and_record_preprocess() -> None:
    first, second = design_specs("pre_process:skip_symbolic_shape")
    assert (first.weight_type, second.weight_type) == (WeightType.U8U8, WeightType.U8S8)
    for spec in (first, second):
        assert not spec.per_channel and not spec.reduce_range and not spec.op_types and not spec.extra_options
        assert spec.preprocess == "pre_process:skip_symbolic_shape"


@pytest.mark.parametrize("state", STATES)
def test_a_pin_is_shipped_whatever_it_measured_unless_it_cannot_be_built_or_run(state: str) -> None:
    pinned = VariantSpec(WeightType.U8S8, per_channel=True, preprocess="raw")
    decision = decide_pinned(measure(pinned, state), margin=MARGIN)

    warnings = [r for r in decision.reasons if r.startswith("WARNING: pinned u8s8-pc ")]
    if state == "quantize_error":
        assert (decision.outcome, decision.selected) == (Outcome.ERROR, None)
        assert decision.reasons[0] == (
            "pinned by per-model settings: u8s8-pc cannot be built: Expected w to be an initializer"
        )
    elif state.endswith("bench_error"):
        assert (decision.outcome, decision.selected) == (Outcome.ERROR, None)
        assert "onnxruntime cannot run u8s8-pc: session failed" in decision.reasons[0]
    else:
        assert (decision.outcome, decision.selected) == (Outcome.QUANTIZED, pinned)
        assert decision.reasons[0] == "selected u8s8-pc: pinned by per-model settings"
        assert decision.speedup_ci == INTERVALS[state.split("/")[1]]
        assert any("failed the accuracy gate" in w for w in warnings) is state.startswith("fail/")
        assert any("shipped anyway" in w and "FP32" in w for w in warnings) is not state.endswith("/faster")
    assert decision.reasons[-1].startswith("U8S8-PC: ")  # what it measured, as the two-step says it
    record = decision.record
    assert isinstance(record, DesignRecord) and record.pinned is not None
    assert record.pinned.per_channel is True and len(record.steps) == 1
