"""The engine's design loop (pipeline.search.run_design) walks policy.next_design_step."""

from __future__ import annotations

from typing import cast

import pytest

from dqd.domain import InputSource, VariantResult, VariantSpec, WeightType
from dqd.pipeline.policy import CandidateMeasurement, decide_design
from dqd.pipeline.search import run_design
from dqd.pipeline.workbench import CandidateRun, Workbench

FAST = (1.6, 1.8)
SAME = (0.97, 1.03)


class FakeBench:
    """Measures each weight type as told; records what was asked, in order."""

    def __init__(self, outcomes: dict[WeightType, tuple[bool, tuple[float, float]]]) -> None:
        self.outcomes = outcomes
        self.asked: list[tuple[WeightType | None, str, str]] = []

    def measure(self, spec: VariantSpec, *, step: str) -> CandidateRun:
        assert spec.weight_type is not None
        self.asked.append((spec.weight_type, step, spec.preprocess))
        passed, ci = self.outcomes[spec.weight_type]
        measurement = CandidateMeasurement(
            spec, gate_passed=passed, gate_source=InputSource.SAMPLES, speedup=sum(ci) / 2, speedup_ci=ci
        )
        variant = VariantResult(spec, "1.32.0", f"/out/{spec.name}.onnx", "0" * 64, 1, 0.1)
        return CandidateRun(variant, measurement=measurement)


@pytest.mark.parametrize(
    ("u8u8", "u8s8", "expected_steps"),
    [
        ((True, FAST), (True, FAST), [WeightType.U8U8]),  # U8U8 qualifies: U8S8 is never built
        ((False, FAST), (True, FAST), [WeightType.U8U8, WeightType.U8S8]),  # gate failed
        ((True, SAME), (True, FAST), [WeightType.U8U8, WeightType.U8S8]),  # not faster
        ((False, SAME), (False, SAME), [WeightType.U8U8, WeightType.U8S8]),  # neither: two, no more
    ],
)
def test_measures_u8s8_only_when_u8u8_does_not_qualify(
    u8u8: tuple[bool, tuple[float, float]],
    u8s8: tuple[bool, tuple[float, float]],
    expected_steps: list[WeightType],
) -> None:
    bench = FakeBench({WeightType.U8U8: u8u8, WeightType.U8S8: u8s8})
    measured, decision = run_design(cast(Workbench, bench), "symbolic", 0.05)
    assert [w for w, _, _ in bench.asked] == expected_steps
    assert all(step == weight.value.lower() and pre == "symbolic" for weight, step, pre in bench.asked)
    measurements = [m.measurement for m in measured if m.measurement]
    assert decision == decide_design(measurements, margin=0.05)
