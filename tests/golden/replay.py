"""Golden replay: the pure decision logic fed with fixed, injected measurements.

Timing noise can flip a close decision between two runs of the real engine,
so "behaviour unchanged" across a refactor is proven here instead: every
combination below is decided by the policy and the ladder, and the outputs
(decision JSON: outcome, selection, reasons, numbers, policy version) are
compared with the recorded ones in ``expected/``. Regenerate them only when a
change of behaviour is intended:

    python -m tests.golden.replay --write
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from dqd.domain import InputSource, VariantSpec, WeightType
from dqd.pipeline import ladder, ladder_select, policy
from dqd.pipeline.ladder_rules import RULE_SETS, rules_for
from dqd.serialize import search_record_json
from tests.golden.files import write_or_compare

EXPECTED = Path(__file__).with_name("expected")
MARGIN = 0.05
NOISE = 0.05

# Speed-up intervals covering each speed class of policy.classify_speed.
SPEEDS: dict[str, tuple[float, tuple[float, float]] | None] = {
    "faster": (1.45, (1.35, 1.52)),
    "unresolved": (1.06, (0.99, 1.12)),
    "not_faster": (1.01, (0.97, 1.04)),
    "slower": (0.62, (0.58, 0.66)),
    # On the boundaries of classify_speed: low exactly 1 + margin, high exactly 1.
    "edge_faster": (1.10, (1.05, 1.15)),
    "edge_slower": (0.98, (0.95, 1.0)),
    "unmeasured": None,
}
Timed = tuple[float, tuple[float, float]] | None
GATES: dict[str, tuple[bool | None, str, InputSource | None]] = {
    "pass": (True, "cosine mean 0.98 >= 0.95", InputSource.SAMPLES),
    "fail": (False, "cosine mean 0.71 < 0.95", InputSource.SYNTHETIC),
    "unchecked": (None, "", None),
}


def jsonable(value: Any) -> Any:
    if isinstance(value, policy.Decision):  # its record as the catalog keeps it, under "numbers"
        kept = {key: item for key, item in asdict(value).items() if key != "record"}
        return jsonable({**kept, "numbers": search_record_json(value.record)})
    if isinstance(value, VariantSpec):
        return {"name": value.name, **value.to_dict()}
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if isinstance(value, float):
        return round(value, 6)
    return value


def measurement(spec: VariantSpec, gate: str, speed: str | Timed, *, quantize_error: bool = False) -> Any:
    if quantize_error:
        return policy.CandidateMeasurement(spec, quantize_error="quantizer raised: unsupported op Foo")
    passed, reason, source = GATES[gate]
    timed = SPEEDS[speed] if isinstance(speed, str) else speed
    return policy.CandidateMeasurement(
        spec,
        gate_passed=passed,
        gate_reason=reason,
        gate_source=source,
        speedup=timed[0] if timed else None,
        speedup_ci=timed[1] if timed else None,
    )


def _variants() -> Iterator[tuple[str, bool, str, str]]:
    yield "quantize_error", True, "unchecked", "unmeasured"
    for gate, speed in itertools.product(GATES, SPEEDS):
        yield f"{gate}-{speed}", False, gate, speed


def design_cases() -> dict[str, Any]:
    """decide_design and next_design_step over every pair of U8U8 / U8S8 measurements."""
    u8u8, u8s8 = policy.design_specs("quant_pre_process")
    out: dict[str, Any] = {}
    for (a_name, a_err, a_gate, a_speed), (b_name, b_err, b_gate, b_speed) in itertools.product(
        _variants(), repeat=2
    ):
        first = measurement(u8u8, a_gate, a_speed, quantize_error=a_err)
        second = measurement(u8s8, b_gate, b_speed, quantize_error=b_err)
        out[f"u8u8={a_name} u8s8={b_name}"] = {
            "next_after_u8u8": jsonable(policy.next_design_step([first], margin=MARGIN)),
            "decision": jsonable(policy.decide_design([first, second], margin=MARGIN)),
            "decision_u8u8_only": jsonable(policy.decide_design([first], margin=MARGIN)),
        }
    return out


def pinned_cases() -> dict[str, Any]:
    spec = VariantSpec(WeightType.U8S8, per_channel=True, preprocess="quant_pre_process")
    return {
        name: jsonable(
            policy.decide_pinned(measurement(spec, gate, speed, quantize_error=err), margin=MARGIN)
        )
        for name, err, gate, speed in _variants()
    }


# Model shapes the ladder plans for: op histograms outside and inside If/Loop/Scan bodies.
TRAITS: dict[str, ladder.ModelTraits] = {
    "encoder": ladder.ModelTraits({"MatMul": 36, "Gather": 1}),
    "cnn": ladder.ModelTraits({"Conv": 53, "MatMul": 1}),
    "mixed": ladder.ModelTraits({"Conv": 4, "MatMul": 12, "LSTM": 2}),
    "rnn_in_subgraphs": ladder.ModelTraits({"Conv": 1}, {"Conv": 12, "LSTM": 4}),
    "lstm": ladder.ModelTraits({"LSTM": 3, "MatMul": 1}),
    # A decoder's decode step: every projection multiplies one row (MatMulNBits' best case).
    "decode_step": ladder.ModelTraits({"MatMul": 49, "Gather": 2}, matmul_rows=1),
    # An encoder at 128 tokens: where the AVX2 rules prune MatMulNBits by shape.
    "encoder_128": ladder.ModelTraits({"MatMul": 36, "Gather": 1}, matmul_rows=128),
}


def _ramp(rung: ladder.Rung, base: float, step: float, half_width: float) -> Timed:
    """Speed-ups that differ rung by rung, so close and clear differences both occur."""
    speed = base + step * rung.index
    return (speed, (speed - half_width, speed + half_width))


# What each rung "measures", keyed by a feature of its spec: the world the ladder is replayed in.
WORLDS: dict[str, Any] = {
    # Everything passes; U8S8 per-channel is clearly the fastest (minilm on VNNI).
    "u8s8_pc_wins": lambda r: (
        "pass",
        (2.4, (2.3, 2.5)) if r.spec.weight_type is WeightType.U8S8 and r.spec.per_channel else "unresolved",
    ),
    # Later rungs a little faster each: overlapping intervals (ties) and clear wins.
    "ramp_close": lambda r: ("pass", _ramp(r, 1.2, 0.04, 0.06)),
    "ramp_clear": lambda r: ("pass", _ramp(r, 1.2, 0.15, 0.03)),
    # Later rungs slower each: the earliest wins clearly.
    "ramp_down": lambda r: ("pass", _ramp(r, 1.9, -0.12, 0.03)),
    # Conv quantization is slow and fails; MatMul-only rungs help a little.
    "conv_slow": lambda r: ("fail", "slower") if r.quantizes_conv else ("pass", "unresolved"),
    # Nothing passes the gate.
    "all_fail": lambda r: ("fail", "faster"),
    # Everything passes, nothing is faster: keep FP32.
    "none_faster": lambda r: ("pass", "not_faster"),
    # MatMulNBits 4-bit is the fastest, 8-bit behind the dynamic rungs (a decode step on AVX2).
    "blockwise_wins": lambda r: (
        "pass",
        (3.0, (2.9, 3.1))
        if r.spec.weight_type is WeightType.Q4
        else (2.1, (2.05, 2.15))
        if r.spec.weight_type is WeightType.Q8
        else (2.5, (2.45, 2.55)),
    ),
    # MatMulNBits is slower than FP32 (an encoder on AVX2 where no shape rule applied).
    "blockwise_slow": lambda r: ("pass", "slower" if r.blockwise else (1.45, (1.4, 1.5))),
}
# Worlds replayed once more with ladder.screen's per-channel-twin rule on.
SCREENED_WORLDS = ("conv_slow",)
# The MatMulNBits worlds and traits meet each other only (and the encoder whose rows are unknown).
BLOCKWISE_WORLDS = ("blockwise_wins", "blockwise_slow")
BLOCKWISE_TRAITS = ("encoder", "decode_step", "encoder_128")


def _replayed(trait_name: str, world_name: str) -> bool:
    if world_name in BLOCKWISE_WORLDS:
        return trait_name in BLOCKWISE_TRAITS
    return trait_name not in BLOCKWISE_TRAITS[1:]  # the shape-only traits meet the MatMulNBits worlds alone


def replay_ladder(
    traits: ladder.ModelTraits, host_class: str, world: Any, budget: float, *, screen: bool = False
) -> dict[str, Any]:
    plan = ladder.plan_ladder(traits, rules_for(host_class), "quant_pre_process")
    results: list[ladder.RungResult] = []
    skipped: list[ladder.Skipped] = []
    steps: list[Any] = []
    elapsed = 0.0
    while True:
        step = ladder.next_step(
            plan,
            results,
            {s.name for s in skipped},
            elapsed=elapsed,
            budget=budget,
            margin=MARGIN,
            screen=screen,
        )
        skipped.extend(step.skipped)
        steps.append({"rung": step.rung.name if step.rung else None, "skipped": jsonable(step.skipped)})
        if step.rung is None:
            stop_reason = step.stop_reason or ""
            break
        gate, speed = world(step.rung)
        timed = ladder.needs_timing(step.rung, GATES[gate][0] is True, results)
        m = measurement(step.rung.spec, gate, speed if timed else "unmeasured")
        results.append(ladder.RungResult(step.rung, m, seconds=30.0))
        elapsed += 30.0
    contenders = ladder.finalists(results, MARGIN)
    decision = ladder_select.decide_ladder(plan, results, skipped, stop_reason, margin=MARGIN, noise=NOISE)
    return {
        "plan": {
            "rules": plan.rules.name,
            "rungs": [{"name": r.name, "reaches": sorted(r.reaches)} for r in plan.rungs],
            "skipped": jsonable(plan.skipped),
        },
        "steps": steps,
        "finalists": [r.rung.name for r in contenders],
        "needs_playoff": ladder.needs_playoff(contenders, MARGIN),
        "decision": _without_rules(jsonable(decision)),
    }


def _without_rules(decision: dict[str, Any]) -> dict[str, Any]:
    """The rule set's text is the same in every case of a class: its name and version stand for it."""
    rules = decision["numbers"].get("rules")
    if isinstance(rules, dict):
        decision["numbers"]["rules"] = f"{rules.get('name')} {rules.get('version')}"
    return decision


def ladder_cases() -> dict[str, Any]:
    # One class per rule set (the rest of a set's classes plan alike) and one with no rule set.
    classes = [rules.host_classes[0] for rules in RULE_SETS] + ["riscv64-generic"]
    out: dict[str, Any] = {}
    for (trait_name, traits), host_class, (world_name, world) in itertools.product(
        TRAITS.items(), classes, WORLDS.items()
    ):
        if not _replayed(trait_name, world_name):
            continue
        # A short budget stops the ladder part-way; the order it stops in depends on the rule set.
        for budget in (600.0, 70.0) if world_name in ("ramp_close", "conv_slow") else (600.0,):
            key = f"{trait_name} {host_class} {world_name} budget={budget:.0f}"
            out[key] = replay_ladder(traits, host_class, world, budget)
            if world_name in SCREENED_WORLDS and budget == 600.0:
                out[f"{key} screen"] = replay_ladder(traits, host_class, world, budget, screen=True)
    return out


def playoff_cases() -> dict[str, Any]:
    """select_rung with a playoff: paired samples decide between close finalists."""
    plan = ladder.plan_ladder(TRAITS["encoder"], rules_for("x86_64-avx512vnni"), "quant_pre_process")
    first, second = plan.rungs[0], plan.rungs[1]
    results = [
        ladder.RungResult(first, measurement(first.spec, "pass", "faster"), 30.0),
        ladder.RungResult(second, measurement(second.spec, "pass", "faster"), 30.0),
    ]
    out: dict[str, Any] = {}
    for name, (a_ms, b_ms) in {
        "second_clearly_faster": (20.0, 12.0),
        "tie": (20.0, 19.8),
        "first_clearly_faster": (12.0, 20.0),
    }.items():
        samples = {first.name: [a_ms + 0.1 * (i % 3) for i in range(30)]}
        samples[second.name] = [b_ms + 0.1 * ((i + 1) % 3) for i in range(30)]
        playoff = ladder_select.Playoff(samples, MARGIN)
        chosen, why = ladder_select.select_rung(results, margin=MARGIN, noise=NOISE, playoff=playoff)
        out[name] = {"chosen": chosen.rung.name if chosen else None, "why": why}
    return out


CASES = {
    "design": design_cases,
    "pinned": pinned_cases,
    "ladder": ladder_cases,
    "playoff": playoff_cases,
}


def render(cases: dict[str, Any]) -> str:
    """One line per case: small to store, and a changed case shows as one changed line in a diff."""
    lines = [json.dumps({key: value}, sort_keys=True) for key, value in sorted(cases.items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    write_or_compare(
        __doc__ or "", EXPECTED, lambda: {name: render(build()) for name, build in CASES.items()}
    )


if __name__ == "__main__":
    main()
