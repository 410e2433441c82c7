"""Which planned rungs the ladder's measurements so far make pointless to try (pure).

Each rule has an id in :data:`dqd.pipeline.ladder_rules.PRUNING_RULES`, and
the reason text a decision records. :func:`dqd.pipeline.ladder.next_step`
asks :func:`prune` about each remaining rung in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from dqd.domain import WeightType
from dqd.pipeline.policy import Speed

if TYPE_CHECKING:  # the ladder's records; ladder.py imports this module
    from dqd.pipeline.ladder import Plan, Rung, RungResult


def prune(
    rung: Rung, plan: Plan, results: Sequence[RungResult], margin: float, *, screen: bool
) -> tuple[str, str] | None:
    """(rule id, reason) when ``rung`` need not be tried after ``results``; None when it should be.

    ``screen`` (``ladder.screen``) adds the per-channel-twin rule.
    """
    if rung.blockwise:
        return _prune_blockwise(rung, plan, results, margin)
    if screen:
        twin = next((r for r in results if _per_channel_twins(r.rung, rung) and _cannot_win(r, margin)), None)
        if twin is not None:
            return "per-channel-twin", (
                f"{twin.rung.name} differs only in per_channel and measured {_how_it_lost(twin, margin)}"
            )
    rules = plan.rules
    if not rung.quantizes_conv:
        return None
    for earlier in results:
        if earlier.rung.quantizes_conv and earlier.speed(margin) is Speed.SLOWER:
            return (
                "conv-slow",
                f"{earlier.rung.name} quantized Conv and measured significantly slower than FP32",
            )
    if rules.u8s8_conv_needs_u8u8_win and rung.spec.weight_type is WeightType.U8S8:
        won = any(
            r.rung.quantizes_conv
            and r.rung.spec.weight_type is WeightType.U8U8
            and r.speed(margin) is Speed.FASTER
            for r in results
        )
        if not won:
            return "u8s8-conv-needs-u8u8-win", (
                f"no U8U8 Conv rung measured faster, and U8S8 ConvInteger is known slow on {rules.name} hosts"
            )
    return None


def _per_channel_twins(a: Rung, b: Rung) -> bool:
    """The same quantization but for per_channel: the same integer kernels, so the same speed."""
    return (
        a.spec.per_channel != b.spec.per_channel
        and a.reaches == b.reaches
        and replace(a.spec, per_channel=b.spec.per_channel) == b.spec
    )


def _cannot_win(result: RungResult, margin: float) -> bool:
    """Timed, and too slow to be selected: not faster than FP32, or screened out behind the leader."""
    return result.screened_out is not None or result.speed(margin) in (Speed.SLOWER, Speed.NOT_FASTER)


def _how_it_lost(result: RungResult, margin: float) -> str:
    speed = result.speed(margin)
    if speed in (Speed.SLOWER, Speed.NOT_FASTER):
        return speed.value
    # Screened out although it may beat FP32: the leader was clearly faster in the same rounds.
    return result.screened_out or "too slow to be selected"


def _prune_blockwise(
    rung: Rung, plan: Plan, results: Sequence[RungResult], margin: float
) -> tuple[str, str] | None:
    bound, rows = plan.rules.blockwise_max_rows, plan.traits.matmul_rows
    if bound is not None and rows is not None and rows > bound:
        return "blockwise-rows", (
            f"every quantizable MatMul multiplies at least {rows} activation rows on the deciding timing "
            f"feed; on {plan.rules.name} hosts MatMulNBits won only up to {bound} rows"
        )
    leader = _leader(results, margin)
    for earlier in results:
        spec = earlier.rung.spec
        if not earlier.rung.blockwise or spec.weight_type is not rung.spec.weight_type:
            continue
        if (spec.block_size or 0) <= (rung.spec.block_size or 0):
            continue  # only a larger block (the faster one) speaks for this rung
        slower_block = "and a smaller block is slower"
        if _cannot_win(earlier, margin):
            return (
                "blockwise-behind",
                f"{earlier.rung.name} measured {_how_it_lost(earlier, margin)}, {slower_block}",
            )
        if leader is not None and _behind(earlier, leader):
            return "blockwise-behind", (
                f"{earlier.rung.name} measured clearly behind {leader.rung.name}, {slower_block}"
            )
    return None


def _leader(results: Sequence[RungResult], margin: float) -> RungResult | None:
    """The fastest rung so far that passed the gate and is significantly faster than FP32."""
    acceptable = [
        r
        for r in results
        if r.measurement.gate_passed is True and r.speed(margin) is Speed.FASTER and r.identical_to is None
    ]
    return max(acceptable, key=lambda r: r.measurement.speedup or 0.0, default=None)


def _behind(result: RungResult, leader: RungResult) -> bool:
    """Each timed in its own run against FP32: intervals that do not overlap, ``result`` below."""
    mine, theirs = result.measurement.speedup_ci, leader.measurement.speedup_ci
    return mine is not None and theirs is not None and mine[1] < theirs[0]
