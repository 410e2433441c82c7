"""Latency statistics, the paired bootstrap interval and the stopping rule."""

from __future__ import annotations

import numpy as np
import pytest

from dqd.domain import MAX_STORED_SAMPLES
from dqd.pipeline.benchmark import is_resolved, latency_stats, speedup_ci, speedup_point


def paired(
    fp32_ms: float, variant_ms: float, n: int, noise: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    drift = rng.normal(0, noise, n)  # shared by both sides of a round, as interleaving intends
    return (
        fp32_ms * (1 + drift + rng.normal(0, noise / 4, n)),
        variant_ms * (1 + drift + rng.normal(0, noise / 4, n)),
    )


def test_latency_stats() -> None:
    stats = latency_stats([float(v) for v in range(1, 1001)])
    assert stats.median_ms == pytest.approx(500.5)
    assert stats.p90_ms == pytest.approx(900.1, rel=1e-3)
    assert stats.p99_ms == pytest.approx(990.01, rel=1e-3)
    assert stats.rounds == 1000 and len(stats.samples_ms) == MAX_STORED_SAMPLES


def test_empty_latency_stats() -> None:
    assert latency_stats([]).rounds == 0


def test_speedup_point_is_median_ratio() -> None:
    assert speedup_point([10.0, 10.0, 30.0], [5.0, 5.0, 1.0]) == pytest.approx(2.0)


def test_interval_covers_the_true_ratio_and_shrinks_with_rounds() -> None:
    short = speedup_ci(*paired(30.0, 20.0, 20, 0.05))
    long = speedup_ci(*paired(30.0, 20.0, 2000, 0.05))
    for low, high in (short, long):
        assert low < 1.5 < high
    assert (long[1] - long[0]) < (short[1] - short[0]) / 3


def test_interval_is_reproducible_and_ordered() -> None:
    base, cand = paired(10.0, 12.0, 200, 0.1)
    first = speedup_ci(base, cand, seed=7)
    assert first == speedup_ci(base, cand, seed=7)
    assert first[0] <= speedup_point(base, cand) <= first[1]


def test_pairing_cancels_shared_drift() -> None:
    """Drift common to a round must not widen the interval of the ratio much."""
    rng = np.random.default_rng(3)
    drift = 1 + np.abs(rng.normal(0, 0.5, 300))  # large machine-wide slowdowns
    low, high = speedup_ci(20.0 * drift, 10.0 * drift)
    assert 1.9 < low <= high < 2.1


def test_unpaired_lengths_are_rejected() -> None:
    with pytest.raises(ValueError):
        speedup_ci([1.0, 2.0], [1.0])


def test_single_round_gives_a_point_interval() -> None:
    assert speedup_ci([10.0], [5.0]) == (2.0, 2.0)


@pytest.mark.parametrize(
    ("ci", "resolved"),
    [
        ((1.10, 1.20), True),
        ((0.50, 0.60), True),
        ((1.00, 1.04), True),
        ((1.02, 1.08), False),
        ((0.9, 1.3), False),
    ],
)
def test_stop_when_the_interval_clears_the_margin_either_way(ci: tuple[float, float], resolved: bool) -> None:
    assert is_resolved(ci, 0.05) is resolved


class _CountingSession:
    """A stand-in session (pure logic: how often the timing loop calls it); each call takes no time."""

    def __init__(self) -> None:
        self.calls = 0

    def get_inputs(self) -> list[object]:
        return []

    def run(self, _outputs: object, _feed: object) -> list[object]:
        self.calls += 1
        return []


def test_lent_sessions_warm_up_once_and_settled_stops_after_min_rounds() -> None:
    from pathlib import Path

    from dqd.domain import VariantSpec, WeightType
    from dqd.pipeline.benchmark import Contender, benchmark_interleaved
    from dqd.settings import BenchmarkSettings

    fp32, candidate = _CountingSession(), _CountingSession()
    ticks = iter(range(10**6))
    timed = benchmark_interleaved(
        [Contender(None, Path("fp32.onnx")), Contender(VariantSpec(WeightType.U8U8), Path("v.onnx"))],
        {},
        BenchmarkSettings(warmup_runs=3, min_seconds=1.0, max_seconds=1e6),
        threads=1,
        clock=lambda: float(next(ticks)),  # one "second" per clock read
        sessions={Path("fp32.onnx"): fp32, Path("v.onnx"): candidate},
        settled=lambda samples: True,
        first_check=0.0,
        min_rounds=5,
    )
    assert timed[0].latency.rounds == 5  # settled at once, but not before min_rounds
    assert fp32.calls == candidate.calls == 1 + 5  # one warm-up call each (lent), then the rounds
