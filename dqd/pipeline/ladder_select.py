"""Choose among the ladder's measured rungs, explain the choice, and give advice (pure).

Selection: among rungs that pass the gate and are significantly faster than
the shipped FP32, those that no other one is *clearly* faster than are tied
on speed. Run-to-run noise is about 5% even when one run's interval is tight,
so "clearly" means by more than ``noise`` and with disjoint intervals; when
the finalists were re-timed together in one interleaved run (a playoff, see
:func:`dqd.pipeline.ladder.needs_playoff`), "clearly" is their paired
interval clearing the benchmark margin instead. Among tied rungs users want
the more accurate file: the higher headline accuracy on the deciding inputs
(:func:`dqd.choice.headline_accuracy`, to :data:`ACCURACY_DECIMALS` places)
wins, then the smaller file, then the earlier rung in the host rule set's
order (the pre-processed FP32 first, then simpler variants).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dqd.domain import Outcome, SearchMode
from dqd.pipeline.advice import speed_text, static_quantization_advice
from dqd.pipeline.benchmark import speedup_ci
from dqd.pipeline.ladder import Plan, RungResult, Skipped
from dqd.pipeline.policy import KEPT_FP32_HEADLINE, Decision, describe, is_acceptable, policy_version_for
from dqd.records import LadderRecord, RungRecord, SkippedRungRecord
from dqd.text import human_size

THOROUGH_VERSION = policy_version_for(SearchMode.THOROUGH)  # what every ladder decision records
ACCURACY_DECIMALS = 4  # headline accuracies that agree this far are equal when breaking a speed tie


@dataclass(frozen=True)
class Playoff:
    """The finalists timed together in one interleaved run: latencies paired round by round."""

    samples_ms: Mapping[str, Sequence[float]]  # rung name -> latencies (ms), same rounds for every rung
    margin: float  # within one run, the benchmark's decision margin says "significantly"
    pooled: bool = False  # each finalist's speed-up over FP32 also counts its pilot's pairs (ladder.screen)


def clearly_faster(a: RungResult, b: RungResult, noise: float, playoff: Playoff | None = None) -> bool:
    """``a`` beats ``b`` beyond doubt.

    Both in the playoff: the paired interval of ``b``'s latency over ``a``'s
    clears ``1 + margin``.  Otherwise each was timed in its own run against
    FP32, so their speed-ups also differ by run-to-run noise: ``a`` must be
    faster by more than ``noise`` *and* with disjoint intervals.
    """
    if playoff is not None and a.rung.name in playoff.samples_ms and b.rung.name in playoff.samples_ms:
        low, _ = speedup_ci(playoff.samples_ms[b.rung.name], playoff.samples_ms[a.rung.name])
        return low >= 1.0 + playoff.margin
    sa, sb = a.measurement.speedup, b.measurement.speedup
    ca, cb = a.measurement.speedup_ci, b.measurement.speedup_ci
    if sa is None or sb is None or ca is None or cb is None:
        return False
    return sa > sb * (1.0 + noise) and ca[0] > cb[1]


def select_rung(
    results: Sequence[RungResult], *, margin: float, noise: float, playoff: Playoff | None = None
) -> tuple[RungResult | None, str]:
    """Among acceptable rungs that no other acceptable rung is clearly faster than (speed tied
    within noise), the most accurate, then the smallest file, then the earliest; and why."""
    eligible = sorted(
        (r for r in results if r.identical_to is None and is_acceptable(r.measurement, margin)),
        key=lambda r: r.rung.index,
    )
    if not eligible:
        return None, ""
    tied = [r for r in eligible if not any(clearly_faster(o, r, noise, playoff) for o in eligible)]
    chosen = min(tied, key=_preference)
    fastest = max(eligible, key=lambda r: r.measurement.speedup or 0.0)
    speedup = chosen.measurement.speedup or 0.0
    why = (
        f"selected {chosen.rung.name}: passes the gate and is significantly faster than FP32 ({speedup:.2f}x)"
    )
    if len(tied) > 1:
        others = [r for r in tied if r is not chosen]
        how = (
            f"paired intervals in the playoff below {1 + playoff.margin:.2f}x"
            if playoff is not None and all(r.rung.name in playoff.samples_ms for r in tied)
            else f"within the {noise:.0%} run-to-run noise or overlapping intervals"
        )
        peers = ", ".join(f"{r.rung.name} ({r.measurement.speedup or 0.0:.2f}x)" for r in others)
        why += f"; as fast as {peers} ({how}), and preferred as {_tie_break(chosen, others)}"
    elif chosen is not fastest:
        best = fastest.measurement.speedup or 0.0
        why += f"; {fastest.rung.name} measured {best:.2f}x but is not clearly faster"
    elif len(eligible) > 1:
        why += f"; clearly the fastest of {len(eligible)} qualifying rungs"
    return chosen, why


def _accuracy_key(result: RungResult) -> float:
    """Higher is better; accuracies equal to ACCURACY_DECIMALS places (what people see) tie."""
    value = result.measurement.accuracy
    return round(value, ACCURACY_DECIMALS) if value is not None else float("-inf")


def preference_order(results: Sequence[RungResult]) -> list[int]:
    """Indices of ``results`` as :func:`select_rung` prefers them among equally fast rungs."""
    return sorted(range(len(results)), key=lambda index: _preference(results[index]))


def _preference(result: RungResult) -> tuple[float, float, int]:
    size = result.measurement.size_bytes
    return (-_accuracy_key(result), float(size) if size is not None else float("inf"), result.rung.index)


def _tie_break(chosen: RungResult, others: Sequence[RungResult]) -> str:
    """What set ``chosen`` apart from the rungs it tied with on speed."""
    runner = min(others, key=_preference)
    if _accuracy_key(chosen) > _accuracy_key(runner):
        metric = chosen.measurement.accuracy_metric or "accuracy"
        theirs = runner.measurement.accuracy
        against = (
            f"{theirs:.4f} for {runner.rung.name}" if theirs is not None else f"none for {runner.rung.name}"
        )
        return f"the more accurate ({metric} {chosen.measurement.accuracy:.4f} against {against})"
    mine, theirs = chosen.measurement.size_bytes, runner.measurement.size_bytes
    if mine is not None and (theirs is None or mine < theirs):
        sizes = (human_size(mine), human_size(theirs))
        if sizes[0] == sizes[1]:  # close enough to print alike: say by how much
            sizes = (f"{mine:,} bytes", f"{theirs:,}" if theirs is not None else "-")
        return f"the smaller file ({sizes[0]} against {sizes[1]} for {runner.rung.name}), as accurate"
    return "the earlier rung, as accurate and as large"


def decide_ladder(
    plan: Plan,
    results: Sequence[RungResult],
    skipped: Sequence[Skipped],
    stop_reason: str,
    *,
    margin: float,
    noise: float,
    playoff: Playoff | None = None,
) -> Decision:
    """The ladder's decision with reasons a person can act on and the numbers behind them.

    With a ``playoff``, the finalists' results carry their playoff speed-ups.
    """
    chosen, why = select_rung(results, margin=margin, noise=noise, playoff=playoff)
    lines = [_describe(r, margin) for r in results]
    if playoff is not None:
        names = ", ".join(n for n in playoff.samples_ms)
        pooled = ", pooled with each one's pilot" if playoff.pooled else ""
        lines.append(
            f"playoff: FP32 and {names} timed together in one interleaved run; their speed-ups above{pooled}"
        )
    lines += [f"{s.name}: not tried ({s.rule}: {s.reason})" for s in (*plan.skipped, *skipped)]
    lines.append(f"ladder stopped: {stop_reason}")
    lines += advice(plan, results, chosen, margin=margin)
    record = ladder_record(plan, results, skipped, stop_reason, margin=margin, noise=noise, playoff=playoff)
    if chosen is None:
        summary = KEPT_FP32_HEADLINE + "no rung passed the gate and was significantly faster than FP32"
        return Decision(Outcome.KEPT_FP32, None, None, None, (summary, *lines), record, THOROUGH_VERSION)
    outcome = Outcome.OPTIMIZED_FP32 if chosen.rung.spec.weight_type is None else Outcome.QUANTIZED
    m = chosen.measurement
    return Decision(
        outcome, chosen.rung.spec, m.speedup, m.speedup_ci, (why, *lines), record, THOROUGH_VERSION
    )


def _describe(result: RungResult, margin: float) -> str:
    if result.identical_to is not None:
        return f"{result.rung.name}: graph byte-identical to {result.identical_to}; not gated or timed again"
    text = describe(result.measurement, margin)
    if result.screened_out is not None:
        text += f" (not gated: {result.screened_out})"
    elif result.measurement.gate_passed is False and result.measurement.speedup_ci is None:
        text += " (not timed: a rung that fails the gate cannot be selected)"
    return text


def advice(
    plan: Plan, results: Sequence[RungResult], chosen: RungResult | None, *, margin: float
) -> list[str]:
    """Point Conv-heavy models that dynamic quantization cannot help at static quantization."""
    if chosen is not None and chosen.rung.quantizes_conv:
        return []
    conv_rungs = [r for r in results if r.rung.quantizes_conv and r.identical_to is None]
    leaves = chosen.rung.name if chosen is not None and chosen.rung.spec.weight_type is not None else None
    return static_quantization_advice(
        plan.traits, [speed_text(r.measurement) for r in conv_rungs], leaves_conv_in_fp32=leaves
    )


def ladder_record(
    plan: Plan,
    results: Sequence[RungResult],
    skipped: Sequence[Skipped],
    stop_reason: str,
    *,
    margin: float,
    noise: float,
    playoff: Playoff | None = None,
) -> LadderRecord:
    """Everything the catalog keeps about this ladder but what only the loop knows (``run``)."""
    tried = tuple(
        RungRecord(
            rung=result.rung.index,
            variant=result.rung.name,
            spec=result.rung.spec,
            reaches=tuple(sorted(result.rung.reaches)),
            identical_to=result.identical_to,
            quantize_error=result.measurement.quantize_error,
            gate_passed=result.measurement.gate_passed,
            gate_source=result.measurement.gate_source or None,
            gate_reason=result.measurement.gate_reason or None,
            speedup=result.measurement.speedup,
            speedup_ci=result.measurement.speedup_ci,
            benchmark_error=result.measurement.benchmark_error,
            seconds=round(result.seconds, 3),
            accuracy_metric=result.measurement.accuracy_metric,
            accuracy=result.measurement.accuracy,
            size_bytes=result.measurement.size_bytes,
            screened_out=result.screened_out,
        )
        for result in results
    )
    return LadderRecord(
        policy_version=THOROUGH_VERSION,
        rules=plan.rules.record(),
        traits=plan.traits.record(),
        order=tuple(r.name for r in plan.rungs),
        tried=tried,
        skipped=tuple(SkippedRungRecord(s.name, s.rule, s.reason) for s in (*plan.skipped, *skipped)),
        stop_reason=stop_reason,
        margin=margin,
        noise=noise,
        playoff=tuple(playoff.samples_ms) if playoff is not None else None,
    )
