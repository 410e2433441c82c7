"""Screening's stop rules and verdicts over latency samples (pure)."""

from __future__ import annotations

import numpy as np

from dqd.pipeline.benchmark import speedup_ci, speedup_point
from dqd.pipeline.screening import (
    clearly_behind,
    not_worth_gating,
    pilot_settled,
    playoff_settled,
    pooled_speedup,
)

MARGIN = 0.05
CONFIDENCE = 0.95


def latencies(median_ms: float, n: int = 40, jitter: float = 0.01, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(median_ms * (1.0 + jitter * rng.standard_normal(n)))


FP32 = latencies(40.0)


def verdict(rung: list[float], leader: tuple[str, list[float]] | None = None) -> str | None:
    return not_worth_gating(
        speedup_point(FP32, rung), speedup_ci(FP32, rung), rung, leader, MARGIN, CONFIDENCE
    )


def test_a_rung_clearly_behind_the_leader_settles_the_pilot_and_is_not_gated() -> None:
    leader, rung = latencies(26.0, seed=1), latencies(32.0, seed=2)  # both faster than FP32
    assert clearly_behind(rung, leader, MARGIN, CONFIDENCE)
    why = verdict(rung, ("u8s8-pc", leader))
    assert why is not None and why.startswith("clearly behind u8s8-pc in the same rounds")


def test_a_rung_as_fast_as_the_leader_is_gated() -> None:
    leader, rung = latencies(26.0, seed=1), latencies(26.2, seed=2)
    assert not clearly_behind(rung, leader, MARGIN, CONFIDENCE)
    assert verdict(rung, ("u8s8-pc", leader)) is None


def test_a_rung_not_faster_than_fp32_is_not_gated_without_a_leader() -> None:
    assert verdict(latencies(39.5, seed=3)) == "a rung this fast cannot be selected"
    assert verdict(latencies(30.0, seed=3)) is None


def test_an_unresolved_rung_is_gated_only_when_its_point_estimate_clears_the_margin() -> None:
    below = latencies(38.6, n=6, jitter=0.06, seed=21)  # about 1.03x, the interval straddling 1.05
    above = latencies(37.4, n=6, jitter=0.06, seed=22)  # about 1.07x, likewise
    for rung in (below, above):
        low, high = speedup_ci(FP32[:6], rung)
        assert low < 1.0 + MARGIN <= high
    fp32 = FP32[:6]
    assert not_worth_gating(
        speedup_point(fp32, below), speedup_ci(fp32, below), below, None, MARGIN, CONFIDENCE
    )
    assert not not_worth_gating(
        speedup_point(fp32, above), speedup_ci(fp32, above), above, None, MARGIN, CONFIDENCE
    )


def test_the_pilot_gives_up_on_a_rung_about_as_fast_as_fp32_once_it_may_accept() -> None:
    below = latencies(38.6, n=6, jitter=0.06, seed=21)
    above = latencies(37.4, n=6, jitter=0.06, seed=22)
    assert not pilot_settled([FP32[:6], below], MARGIN, CONFIDENCE, may_accept=False)
    assert pilot_settled([FP32[:6], below], MARGIN, CONFIDENCE, may_accept=True)
    assert not pilot_settled([FP32[:6], above], MARGIN, CONFIDENCE, may_accept=True)


def test_the_pilot_waits_while_the_rung_straddles_the_margin() -> None:
    straddling = latencies(38.1, n=10, jitter=0.05, seed=4)  # about 1.05x, wide: unresolved
    assert not pilot_settled([FP32[:10], straddling], MARGIN, CONFIDENCE, may_accept=False)
    assert pilot_settled([FP32[:10], latencies(20.0, n=10, seed=5)], MARGIN, CONFIDENCE)  # clearly faster


def test_the_pilot_settles_on_a_rung_clearly_behind_the_leader_even_if_unresolved_against_fp32() -> None:
    straddling = latencies(38.1, n=10, jitter=0.05, seed=4)
    leader = latencies(20.0, n=10, seed=6)
    assert pilot_settled([FP32[:10], leader, straddling], MARGIN, CONFIDENCE)


def test_the_playoff_settles_when_each_finalist_is_clearly_beaten_or_clearly_not() -> None:
    fast, tie, slow = latencies(20.0, seed=7), latencies(20.1, seed=8), latencies(30.0, seed=9)
    assert playoff_settled([FP32, fast, tie, slow], MARGIN, CONFIDENCE)


def test_the_playoff_goes_on_while_a_faster_finalist_may_still_beat_the_preferred_one() -> None:
    faster = latencies(20.0, n=8, jitter=0.08, seed=10)
    preferred = latencies(21.2, n=8, jitter=0.08, seed=11)  # 6 % slower, intervals wide: an open question
    samples = [FP32[:8], faster, preferred]
    assert not playoff_settled(samples, MARGIN, CONFIDENCE, preference=[1, 0])
    # Preferring the faster one, nothing can change the pick: how the other compares does not matter.
    assert playoff_settled(samples, MARGIN, CONFIDENCE, preference=[0, 1])


def test_the_playoff_goes_on_while_a_finalist_is_unresolved_against_fp32() -> None:
    straddling = latencies(38.1, n=10, jitter=0.05, seed=4)
    assert not playoff_settled([FP32[:10], latencies(20.0, n=10, seed=7), straddling], MARGIN, CONFIDENCE)


def test_pooling_a_pilot_into_a_short_playoff_narrows_the_interval_without_moving_it() -> None:
    pilot = (latencies(40.0, n=20, jitter=0.03, seed=12), latencies(27.0, n=20, jitter=0.03, seed=13))
    playoff = (latencies(40.0, n=4, jitter=0.03, seed=14), latencies(27.0, n=4, jitter=0.03, seed=15))
    alone_point, (alone_low, alone_high) = pooled_speedup([playoff], CONFIDENCE)
    point, (low, high) = pooled_speedup([playoff, pilot], CONFIDENCE)
    assert high - low < alone_high - alone_low
    assert abs(point - 40.0 / 27.0) < 0.05 and abs(alone_point - 40.0 / 27.0) < 0.1


def test_a_finalist_resolved_by_its_pilot_does_not_hold_the_playoff_open() -> None:
    straddling = [[40.0, 40.5, 39.5], [38.5, 34.0, 37.0]]  # 1.04x to 1.18x from three noisy rounds
    pilot = (latencies(40.0, n=30, seed=19), latencies(36.0, n=30, seed=20))  # 1.11x, tight
    assert not playoff_settled(straddling, MARGIN, CONFIDENCE)
    assert playoff_settled(straddling, MARGIN, CONFIDENCE, [pilot])


def test_after_the_soft_cap_only_a_difference_that_looks_real_keeps_the_playoff_going() -> None:
    fp32 = [60.0, 60.4, 59.6, 60.2]
    first = [30.0, 28.0, 32.0, 29.0]
    # Against the first finalist, round by round: about 1 % apart, and about 16 % apart; neither
    # interval resolved over four rounds, both finalists clearly faster than FP32.
    close = [fp32, first, [a * r for a, r in zip(first, (1.03, 0.97, 1.09, 0.99), strict=True)]]
    apart = [fp32, first, [a * r for a, r in zip(first, (1.25, 1.01, 1.28, 1.06), strict=True)]]
    slower_first = [1, 0]  # the question: is the first finalist clearly faster than the preferred one?
    for samples in (close, apart):
        assert not playoff_settled(samples, MARGIN, CONFIDENCE, preference=slower_first)
    assert playoff_settled(close, MARGIN, CONFIDENCE, preference=slower_first, patience_spent=True)
    assert not playoff_settled(apart, MARGIN, CONFIDENCE, preference=slower_first, patience_spent=True)


def test_an_early_look_drops_a_loser_but_does_not_accept_a_winner() -> None:
    winner = latencies(20.0, n=10, seed=5)
    loser = latencies(44.0, n=10, seed=23)
    assert not pilot_settled([FP32[:10], winner], MARGIN, CONFIDENCE, may_accept=False)
    assert pilot_settled([FP32[:10], winner], MARGIN, CONFIDENCE, may_accept=True)
    assert pilot_settled([FP32[:10], loser], MARGIN, CONFIDENCE, may_accept=False)
