"""The variant ladder, ``search = "thorough"``: which rungs to try, in what order, when to stop.

Pure functions of the model's op histogram, the host's rule set
(:mod:`dqd.pipeline.ladder_rules`), the measurements so far and the elapsed
time (an argument, never a clock).  The loop that builds, gates and times
rungs lives in :mod:`dqd.pipeline.thorough`; the choice among the measured
rungs in :mod:`dqd.pipeline.ladder_select`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dqd.domain import VariantSpec
from dqd.pipeline.ladder_prune import prune
from dqd.pipeline.ladder_rules import (
    BLOCKWISE_OPS,
    CONV_OPS,
    MATMUL_OPS,
    PER_CHANNEL_OPS,
    SUBSET_OP_TYPES,
    SUBSET_REACH,
    WEIGHT_TYPE_OPS,
    HostRules,
    RungTemplate,
    Subset,
)
from dqd.pipeline.policy import CandidateMeasurement, Speed, classify_speed
from dqd.quantops import DYNAMIC_OPS
from dqd.records import TraitsRecord

ENABLE_SUBGRAPH = {"EnableSubgraph": True}


@dataclass(frozen=True)
class ModelTraits:
    """The quantizable op types of a model, outside and inside If/Loop/Scan bodies.

    ``matmul_rows``: the fewest activation rows any quantizable MatMul multiplies
    on the deciding timing feed (a lower bound where shapes are partly
    unknown; None: not known at all).
    """

    top_level: Mapping[str, int]
    in_subgraphs: Mapping[str, int] = field(default_factory=dict)
    matmul_rows: int | None = None

    @property
    def counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for histogram in (self.top_level, self.in_subgraphs):
            for op, count in histogram.items():
                if op in DYNAMIC_OPS and count > 0:
                    total[op] = total.get(op, 0) + count
        return total

    @property
    def ops(self) -> frozenset[str]:
        return frozenset(self.counts)

    @property
    def needs_subgraph(self) -> bool:
        """Quantizable ops inside control flow: only ``EnableSubgraph`` reaches them."""
        return any(count > 0 and op in DYNAMIC_OPS for op, count in self.in_subgraphs.items())

    @property
    def conv_heavy(self) -> bool:
        """Conv layers outnumber the MatMul/Attention/LSTM layers dynamic quantization could help instead."""
        counts = self.counts
        conv = counts.get("Conv", 0)
        return conv > 0 and conv >= sum(counts.get(op, 0) for op in (*MATMUL_OPS, "LSTM"))

    def record(self) -> TraitsRecord:
        return TraitsRecord(self.counts, dict(self.in_subgraphs), self.conv_heavy, self.matmul_rows)


@dataclass(frozen=True)
class Rung:
    """A rung fitted to one model: ``reaches`` are the op types its spec actually rewrites there."""

    index: int
    spec: VariantSpec
    reaches: frozenset[str]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def quantizes_conv(self) -> bool:
        return bool(self.reaches & CONV_OPS)

    @property
    def blockwise(self) -> bool:
        """A MatMulNBits (Q4/Q8) rung."""
        return self.spec.weight_type is not None and self.spec.weight_type.blockwise


@dataclass(frozen=True)
class Skipped:
    name: str
    rule: str  # an id from ladder_rules.PRUNING_RULES
    reason: str


@dataclass(frozen=True)
class Plan:
    rules: HostRules
    traits: ModelTraits
    rungs: tuple[Rung, ...]
    skipped: tuple[Skipped, ...]  # templates that collapsed onto an earlier rung


@dataclass(frozen=True)
class RungResult:
    """What one tried rung produced; ``identical_to`` names an earlier rung with a byte-identical graph;
    ``screened_out`` says why a rung was timed but not gated (dqd.pipeline.screening)."""

    rung: Rung
    measurement: CandidateMeasurement
    seconds: float
    identical_to: str | None = None
    screened_out: str | None = None

    def speed(self, margin: float) -> Speed | None:
        ci = self.measurement.speedup_ci
        return classify_speed(ci, margin) if ci is not None else None


@dataclass(frozen=True)
class NextStep:
    rung: Rung | None  # None: the ladder is done
    skipped: tuple[Skipped, ...] = ()  # rungs passed over on the way, with the rule that pruned them
    stop_reason: str | None = None


def plan_ladder(traits: ModelTraits, rules: HostRules, preprocess: str) -> Plan:
    """Fit the host's rung order to what the model contains; drop templates that would repeat a rung."""
    rungs: list[Rung] = []
    skipped: list[Skipped] = []
    seen: dict[tuple[Any, ...], Rung] = {}
    extra = dict(ENABLE_SUBGRAPH) if traits.needs_subgraph else {}
    for template in rules.order:
        fitted = _fit(template, traits)
        if fitted is None:
            continue  # the model has none of the ops this subset names: nothing to record
        normalized, reaches = fitted
        signature = _signature(normalized, reaches)
        spec = _spec(normalized, extra, preprocess)
        asked = _spec(template, extra, preprocess)
        earlier = seen.get(signature)
        if earlier is not None and asked == earlier.spec:
            continue  # the very same rung, planned from an earlier template
        if earlier is not None:
            skipped.append(
                Skipped(asked.name, "same-effective-spec", _collapse_reason(template, earlier, reaches))
            )
            continue
        rung = Rung(len(rungs), spec, reaches)
        if asked != spec:
            skipped.append(
                Skipped(asked.name, "same-effective-spec", _collapse_reason(template, rung, reaches))
            )
        seen[signature] = rung
        rungs.append(rung)
    return Plan(rules, traits, tuple(rungs), tuple(skipped))


def _fit(template: RungTemplate, traits: ModelTraits) -> tuple[RungTemplate, frozenset[str]] | None:
    if template.weight is None:
        return template, frozenset()
    if template.weight.blockwise:
        blockwise_reach = traits.ops & BLOCKWISE_OPS
        return (template, blockwise_reach) if blockwise_reach else None
    reach = SUBSET_REACH[template.subset]
    reaches = traits.ops if reach is None else traits.ops & reach
    if not reaches:
        return None
    subset = Subset.ALL if reaches == traits.ops else template.subset
    per_channel = template.per_channel and bool(reaches & PER_CHANNEL_OPS)
    return RungTemplate(template.weight, subset, per_channel), reaches


def _signature(template: RungTemplate, reaches: frozenset[str]) -> tuple[Any, ...]:
    if template.weight is None:
        return ("fp32",)
    if template.weight.blockwise:
        return ("blockwise", template.weight, template.block_size)
    # weight_type changes only Conv/MatMul/Attention weights (LSTM is int8, Gather uint8, regardless).
    weight = template.weight if reaches & WEIGHT_TYPE_OPS else None
    return (reaches, weight, template.per_channel)


def _spec(template: RungTemplate, extra: Mapping[str, Any], preprocess: str) -> VariantSpec:
    if template.weight is None:
        return VariantSpec(None, preprocess=preprocess)
    if template.weight.blockwise:  # MatMulNBitsQuantizer walks subgraphs itself; no quantize_dynamic options
        return VariantSpec(template.weight, block_size=template.block_size, preprocess=preprocess)
    return VariantSpec(
        template.weight,
        per_channel=template.per_channel,
        op_types=SUBSET_OP_TYPES[template.subset],
        extra_options=dict(extra),
        preprocess=preprocess,
    )


def _collapse_reason(template: RungTemplate, earlier: Rung, reaches: frozenset[str]) -> str:
    ops = ", ".join(sorted(reaches))
    why = []
    if template.per_channel and not reaches & PER_CHANNEL_OPS:
        why.append(f"per_channel does not reach {ops}")
    if template.weight is not earlier.spec.weight_type:
        why.append(f"weight_type has no effect on {ops} (LSTM weights are always int8, Gather tables uint8)")
    if template.subset is not Subset.ALL and not earlier.spec.op_types:
        why.append(f"the {template.subset.value} subset covers every quantizable op of this model")
    elif template.subset is not Subset.ALL:
        why.append(f"the {template.subset.value} subset reaches only {ops} here")
    return f"same quantization as {earlier.name}: " + ("; ".join(why) or "identical options")


def next_step(
    plan: Plan,
    results: Sequence[RungResult],
    skipped: Collection[str],
    *,
    elapsed: float,
    budget: float,
    margin: float,
    screen: bool = False,
) -> NextStep:
    """The next rung to try, the rungs pruned on the way to it, or why the ladder stops.

    ``skipped`` holds names already pruned in earlier steps; ``elapsed`` is the
    seconds spent on this ladder so far; ``margin`` is the benchmark's decision
    margin; ``screen`` (``ladder.screen``) adds the per-channel-twin rule.
    """
    done = {r.rung.name for r in results}
    pruned: list[Skipped] = []
    remaining = [r for r in plan.rungs if r.name not in done and r.name not in skipped]
    for index, rung in enumerate(remaining):
        rule = prune(rung, plan, results, margin, screen=screen)
        if rule is not None:
            pruned.append(Skipped(rung.name, *rule))
            continue
        expected = _expected_seconds(results)
        if elapsed >= budget or elapsed + expected > budget:
            left = ", ".join(r.name for r in remaining[index:])
            reason = (
                f"time budget: {elapsed:.0f} s of {budget:.0f} s used, a rung takes about {expected:.0f} s; "
                f"not tried: {left}"
            )
            return NextStep(None, tuple(pruned), reason)
        return NextStep(rung, tuple(pruned))
    tried = len(results)
    return NextStep(None, tuple(pruned), f"ladder complete: {tried} rung(s) tried, the rest pruned")


def _expected_seconds(results: Sequence[RungResult]) -> float:
    """A new rung's likely cost: the mean of the rungs measured so far (identical ones excluded)."""
    costs = [r.seconds for r in results if r.identical_to is None]
    return sum(costs) / len(costs) if costs else 0.0


def needs_timing(rung: Rung, gate_passed: bool, results: Sequence[RungResult]) -> bool:
    """Time a rung that passed the gate; time a failing one only if it is the first look at Conv's speed.

    A failing rung can never be selected, but whether ConvInteger is slower
    here is what prunes every later Conv rung, so that one answer is worth a
    benchmark.
    """
    if gate_passed:
        return True
    if not rung.quantizes_conv:
        return False
    return not any(r.rung.quantizes_conv and r.measurement.speedup_ci is not None for r in results)


def finalists(results: Sequence[RungResult], margin: float) -> list[RungResult]:
    """Rungs worth a joint re-timing: passed the gate and may be significantly faster than FP32.

    Each rung was timed in its own run against FP32, and run-to-run noise
    (about 5%) is as large as the differences between good rungs; timing the
    finalists together in one interleaved run compares them round by round.
    """
    return [
        r
        for r in results
        if r.identical_to is None
        and r.measurement.gate_passed is True
        and r.measurement.speedup_ci is not None
        and r.measurement.speedup_ci[1] >= 1.0 + margin
    ]


def needs_playoff(contenders: Sequence[RungResult], margin: float) -> bool:
    """Re-time the finalists together when they must be told apart, or one is still unresolved.

    An unresolved finalist ran out of benchmark time with its interval
    straddling ``1 + margin``; the playoff is its one extension (close cases
    take longer), never a third run.
    """
    if len(contenders) >= 2:
        return True
    return any(r.speed(margin) is Speed.UNRESOLVED for r in contenders)
