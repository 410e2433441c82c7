"""Which file to ship: a pure function of measurements and thresholds (no I/O, no clock).

Design mode, the two-step: U8U8 first; if it passes the gate and is
significantly faster than FP32, ship it.  Otherwise U8S8 under the same test.
Otherwise keep FP32, saying what each variant measured.  A per-model pin
(:func:`decide_pinned`) replaces the choice but not the measurements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from dqd.domain import InputSource, Outcome, SearchMode, VariantSpec, WeightType
from dqd.pipeline.ladder_rules import RULES_REVISION
from dqd.records import DesignRecord, SearchRecord, StepRecord

POLICY_VERSION = "design-two-step/1"
# Derived from the ladder rules' revision: a rules bump must make every thorough decision
# stale (the scheduler re-decides a model when its policy version is older).
LADDER_POLICY_VERSION = f"ladder/{RULES_REVISION}"
PINNED = "pinned by per-model settings"
# What preflight and its pre-fixes (dqd.pipeline.prefix) can repair or decide. An `error` or
# `skipped` decision under an older one is stale: bump it when a model refused before may
# now get a decision. 1 (recorded as NULL): before pre-fixes; 2: old opsets upgraded, probed
# synthetic shapes, partly quantized models quantized where still float; 3: FP16/BF16 models
# widened to FP32, computed weights folded.
PREFLIGHT_VERSION = "preflight/3"
KEPT_FP32_HEADLINE = "kept FP32: "  # how a decision to ship no variant starts its reasons


class Speed(StrEnum):
    FASTER = "significantly faster than FP32"  # slow end of the interval beats FP32 by the margin
    UNRESOLVED = "not significantly faster than FP32"  # the interval straddles 1 + margin
    NOT_FASTER = "not faster than FP32 by the margin"  # interval below 1 + margin, not wholly below 1
    SLOWER = "slower than FP32"  # the whole interval below 1


@dataclass(frozen=True)
class CandidateMeasurement:
    """What the policy judges about one candidate: built, gated, timed; ``None`` fields were not measured."""

    spec: VariantSpec
    quantize_error: str | None = None
    gate_passed: bool | None = None
    gate_reason: str = ""
    gate_source: InputSource | None = None  # the input source that decided
    speedup: float | None = None
    speedup_ci: tuple[float, float] | None = None
    benchmark_error: str | None = None
    # The headline accuracy on the deciding source (dqd.choice.headline_accuracy: the worst
    # output's most telling metric, higher is better), and the file's size: tie-breakers.
    accuracy_metric: str | None = None
    accuracy: float | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    selected: VariantSpec | None
    speedup: float | None
    speedup_ci: tuple[float, float] | None
    reasons: tuple[str, ...]
    record: SearchRecord  # the numbers behind it, for the catalog (details["decision"])
    policy_version: str = POLICY_VERSION


def policy_version_for(search: SearchMode | str) -> str:
    """The policy version a decision made now in ``search`` mode records.

    The one source for it: the engine stamps its results with it and the
    scheduler compares recorded decisions against it, so the two cannot drift.
    Lives here, not in the ladder, so the daemon can ask without importing ONNX code.
    """
    return LADDER_POLICY_VERSION if SearchMode(search) is SearchMode.THOROUGH else POLICY_VERSION


def design_specs(preprocess: str) -> tuple[VariantSpec, VariantSpec]:
    """The two steps with onnxruntime's default options, in order."""
    return (
        VariantSpec(WeightType.U8U8, preprocess=preprocess),
        VariantSpec(WeightType.U8S8, preprocess=preprocess),
    )


def classify_speed(ci: tuple[float, float], margin: float) -> Speed:
    low, high = ci
    if low >= 1.0 + margin:
        return Speed.FASTER
    if high < 1.0:
        return Speed.SLOWER
    if high < 1.0 + margin:
        return Speed.NOT_FASTER
    return Speed.UNRESOLVED


def is_acceptable(measurement: CandidateMeasurement, margin: float) -> bool:
    """Passes the gate and is significantly faster than FP32."""
    return (
        measurement.quantize_error is None
        and measurement.gate_passed is True
        and measurement.speedup_ci is not None
        and classify_speed(measurement.speedup_ci, margin) is Speed.FASTER
    )


def describe(measurement: CandidateMeasurement, margin: float) -> str:
    """One sentence a person can act on: what this variant measured and why it does or does not qualify."""
    name = measurement.spec.name.upper() if measurement.spec.weight_type else measurement.spec.name
    if measurement.quantize_error is not None:
        return f"{name}: quantization failed ({measurement.quantize_error})"
    parts = []
    if measurement.gate_passed is None:
        parts.append("accuracy not measured")
    else:
        verdict = "passed" if measurement.gate_passed else "failed"
        source = f" on {measurement.gate_source} inputs" if measurement.gate_source else ""
        parts.append(f"{verdict} the accuracy gate{source} ({measurement.gate_reason})")
    if measurement.benchmark_error is not None:
        parts.append(f"benchmark failed ({measurement.benchmark_error})")
    elif measurement.speedup_ci is None or measurement.speedup is None:
        parts.append("speed not measured")
    else:
        speed = classify_speed(measurement.speedup_ci, margin)
        low, high = measurement.speedup_ci
        parts.append(
            f"{speed.value}: speed-up {measurement.speedup:.2f}x [{low:.2f}, {high:.2f}] "
            f"(needs >= {1.0 + margin:.2f}x at the slow end)"
        )
    return f"{name}: " + "; ".join(parts)


def decide_design(measurements: Sequence[CandidateMeasurement], *, margin: float) -> Decision:
    """The two-step over ``measurements`` in step order (U8U8, then U8S8 if it was needed).

    The first acceptable variant wins; later ones are ignored as the design
    stops there.  Without one, FP32 is kept and every measured step is named.
    """
    if not measurements:
        raise ValueError("the design policy needs at least the U8U8 measurement")
    reasons: list[str] = []
    steps: list[StepRecord] = []
    for measurement in measurements:
        reasons.append(describe(measurement, margin))
        steps.append(step_record(measurement, margin))
        if is_acceptable(measurement, margin):
            return Decision(
                outcome=Outcome.QUANTIZED,
                selected=measurement.spec,
                speedup=measurement.speedup,
                speedup_ci=measurement.speedup_ci,
                reasons=(
                    f"selected {measurement.spec.name}: passes the gate and is significantly faster",
                    *reasons,
                ),
                record=DesignRecord(margin, tuple(steps)),
            )
    summary = KEPT_FP32_HEADLINE + _why_none(measurements, margin)
    record = DesignRecord(margin, tuple(steps))
    return Decision(Outcome.KEPT_FP32, None, None, None, (summary, *reasons), record)


def decide_pinned(measurement: CandidateMeasurement, *, margin: float) -> Decision:
    """Ship the pinned spec whatever it measured, unless it cannot be built or run at all.

    The pin is the user's call, so the gate and the benchmark only inform it;
    a pinned variant that fails either is still shipped, with a warning that
    says so first.  One that onnxruntime cannot build or run would break the
    model's users: that is an ``error``.
    """
    spec = measurement.spec
    measured = describe(measurement, margin)
    record = DesignRecord(margin, (step_record(measurement, margin),), pinned=spec)
    if measurement.quantize_error is not None:
        failure = f"{PINNED}: {spec.name} cannot be built: {measurement.quantize_error}"
        return Decision(Outcome.ERROR, None, None, None, (failure, measured), record)
    if measurement.benchmark_error is not None:
        failure = f"{PINNED}: onnxruntime cannot run {spec.name}: {measurement.benchmark_error}"
        return Decision(Outcome.ERROR, None, None, None, (failure, measured), record)
    reasons = (f"selected {spec.name}: {PINNED}", *_pin_warnings(measurement, margin), measured)
    return Decision(Outcome.QUANTIZED, spec, measurement.speedup, measurement.speedup_ci, reasons, record)


def _pin_warnings(measurement: CandidateMeasurement, margin: float) -> list[str]:
    name = measurement.spec.name
    warnings = []
    if measurement.gate_passed is not True:
        warnings.append(
            f"WARNING: pinned {name} failed the accuracy gate ({measurement.gate_reason}); "
            "shipped anyway because it is pinned"
        )
    speed = classify_speed(measurement.speedup_ci, margin) if measurement.speedup_ci else None
    if speed is not Speed.FASTER:
        how = speed.value if speed is not None else "not timed"
        warnings.append(f"WARNING: pinned {name} is {how}; shipped anyway because it is pinned")
    return warnings


def next_design_step(measurements: Sequence[CandidateMeasurement], *, margin: float) -> WeightType | None:
    """The weight type to measure next, or None when the two-step has its answer."""
    if any(is_acceptable(m, margin) for m in measurements):
        return None
    order = (WeightType.U8U8, WeightType.U8S8)
    return order[len(measurements)] if len(measurements) < len(order) else None


def _why_none(measurements: Sequence[CandidateMeasurement], margin: float) -> str:
    slow = [
        m.spec.name
        for m in measurements
        if m.speedup_ci and classify_speed(m.speedup_ci, margin) is Speed.SLOWER
    ]
    failed_gate = [m.spec.name for m in measurements if m.gate_passed is False]
    broken = [m.spec.name for m in measurements if m.quantize_error or m.benchmark_error]
    pieces = []
    if slow:
        pieces.append(f"{', '.join(slow)} slower than FP32")
    if failed_gate:
        pieces.append(f"{', '.join(failed_gate)} failed the accuracy gate")
    if broken:
        pieces.append(f"{', '.join(broken)} could not be built or timed")
    rest = [m.spec.name for m in measurements if m.spec.name not in {*slow, *failed_gate, *broken}]
    if rest:
        pieces.append(f"{', '.join(rest)} not significantly faster than FP32")
    return "; ".join(pieces) or "no variant qualified"


def step_record(measurement: CandidateMeasurement, margin: float) -> StepRecord:
    """The measurement as the catalog keeps it, with its speed class under ``margin``."""
    ci = measurement.speedup_ci
    return StepRecord(
        variant=measurement.spec.name,
        quantize_error=measurement.quantize_error,
        gate_passed=measurement.gate_passed,
        gate_source=measurement.gate_source or None,
        speedup=measurement.speedup,
        speedup_ci=ci,
        speed=classify_speed(ci, margin).value if ci else None,
        benchmark_error=measurement.benchmark_error,
    )
