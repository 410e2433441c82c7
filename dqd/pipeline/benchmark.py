"""Honest CPU latency comparison of the shipped FP32 and candidates, in one process.

Rounds interleave FP32 and every candidate (FP32, V1, V2, FP32, V1, V2, ...) so
drift (thermal, neighbours, frequency) hits both sides of each pair alike.
Intra-op spinning is off: spinning threads of an idle session steal the CPU
from the one being timed.  Timing stops when the paired-bootstrap interval of
every candidate's speed-up clears ``1 + margin`` either way, or the budget ends.
Other processes' use of the CPU over the timed rounds (:mod:`dqd.hostload`) is
recorded with the timings; above ``max_foreign_load`` the run raises
:class:`HostBusy` and no decision is taken from it.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dqd import hostload
from dqd.domain import MAX_STORED_SAMPLES, BenchmarkResult, LatencyStats, VariantSpec
from dqd.errors import HostBusy
from dqd.settings import BenchmarkSettings

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_MAX_PAIRS = 4000  # the most recent pairs; enough for a stable interval, bounded cost


@dataclass(frozen=True)
class Contender:
    spec: VariantSpec | None  # None: the shipped FP32
    path: Path


def latency_stats(samples_ms: Sequence[float]) -> LatencyStats:
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        return LatencyStats(median_ms=float("nan"), p90_ms=float("nan"), p99_ms=float("nan"), rounds=0)
    step = max(1, values.size // MAX_STORED_SAMPLES)
    return LatencyStats(
        median_ms=float(np.median(values)),
        p90_ms=float(np.percentile(values, 90)),
        p99_ms=float(np.percentile(values, 99)),
        rounds=int(values.size),
        samples_ms=tuple(round(float(v), 4) for v in values[::step][:MAX_STORED_SAMPLES]),
    )


def speedup_point(
    baseline_ms: Sequence[float] | np.ndarray, candidate_ms: Sequence[float] | np.ndarray
) -> float:
    """FP32 median latency / candidate median latency: > 1 means the candidate is faster."""
    return float(np.median(baseline_ms) / np.median(candidate_ms))


def speedup_ci(
    baseline_ms: Sequence[float],
    candidate_ms: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Paired bootstrap interval of the median-ratio speed-up: rounds are resampled whole."""
    base = np.asarray(baseline_ms, dtype=np.float64)[-BOOTSTRAP_MAX_PAIRS:]
    cand = np.asarray(candidate_ms, dtype=np.float64)[-BOOTSTRAP_MAX_PAIRS:]
    if base.size != cand.size:
        raise ValueError("paired samples must have the same length")
    if base.size < 2:
        point = speedup_point(base, cand)
        return point, point
    rng = np.random.default_rng(seed)
    index = rng.integers(0, base.size, size=(resamples, base.size))
    ratios = np.median(base[index], axis=1) / np.median(cand[index], axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return float(low), float(high)


def is_resolved(ci: tuple[float, float], margin: float) -> bool:
    """The interval lies wholly on one side of ``1 + margin``: significantly faster, or not."""
    threshold = 1.0 + margin
    return ci[0] >= threshold or ci[1] < threshold


def create_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


Settled = Callable[[Sequence[Sequence[float]]], bool]  # latency samples per contender -> stop timing


def benchmark_interleaved(
    contenders: Sequence[Contender],
    feed: Mapping[str, np.ndarray],
    settings: BenchmarkSettings,
    *,
    threads: int,
    step: str = "",
    clock: Callable[[], float] = time.perf_counter,
    sessions: Mapping[Path, Any] | None = None,
    settled: Settled | None = None,
    first_check: float | None = None,
    min_rounds: int = 0,
) -> list[BenchmarkResult]:
    """Time ``contenders`` (the first is the FP32 baseline) in interleaved rounds; results in that order.

    ``sessions`` lends already open sessions by path (the caller's FP32 and
    leader): they are not opened again. Timing stops at ``max_seconds``, or
    from ``first_check`` seconds (default ``min_seconds``) and ``min_rounds``
    rounds on, once ``settled`` says so (default: every candidate's interval
    lies wholly on one side of ``1 + margin``).
    """
    if len(contenders) < 2 or contenders[0].spec is not None:
        raise ValueError("the first contender must be the shipped FP32 (spec None), followed by candidates")
    lent = sessions or {}
    runs = [
        _runner(lent[c.path] if c.path in lent else create_session(c.path, threads), feed) for c in contenders
    ]
    # A lent session has run before: one call settles its buffers for this feed's shapes.
    warmups = [1 if c.path in lent else settings.warmup_runs for c in contenders]
    for index in range(max(warmups, default=0)):
        for run, count in zip(runs, warmups, strict=True):
            if index < count:
                run()
    samples: list[list[float]] = [[] for _ in contenders]
    load_before = hostload.sample()
    is_settled = settled or (lambda timed: all_resolved(timed, settings.margin, settings.confidence))
    started = clock()
    next_check = settings.min_seconds if first_check is None else first_check
    while True:
        for run, bucket in zip(runs, samples, strict=True):
            begin = clock()
            run()
            bucket.append((clock() - begin) * 1000.0)
        elapsed = clock() - started
        if elapsed >= settings.max_seconds:
            break
        if elapsed >= next_check and len(samples[0]) >= min_rounds:
            if is_settled(samples):
                break
            next_check = elapsed + max(0.25, 0.1 * elapsed)  # the bootstrap costs; check less often as we go
    load = hostload.foreign_load(load_before, hostload.sample())
    if load is not None and load.value > settings.max_foreign_load:
        raise HostBusy(
            f"the host was busy during the benchmark ({step or 'timing'}): foreign load {load.value:.2f} "
            f"({load.source}) over benchmark.max_foreign_load {settings.max_foreign_load:g}; "
            "its timings are not used",
            load=load.value,
            source=load.source,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    foreign = None if load is None else round(load.value, 4)
    source = None if load is None else load.source
    results = [
        BenchmarkResult(None, threads, latency_stats(samples[0]), None, None, peak, step, foreign, source)
    ]
    for contender, bucket in zip(contenders[1:], samples[1:], strict=True):
        results.append(
            BenchmarkResult(
                spec=contender.spec,
                threads=threads,
                latency=latency_stats(bucket),
                speedup=speedup_point(samples[0], bucket),
                speedup_ci=speedup_ci(samples[0], bucket, confidence=settings.confidence),
                peak_rss_bytes=peak,
                step=step,
                foreign_load=foreign,
                load_source=source,
            )
        )
    return results


def all_resolved(samples: Sequence[Sequence[float]], margin: float, confidence: float) -> bool:
    """Every candidate's speed-up interval over the baseline (``samples[0]``) is resolved."""
    baseline = samples[0]
    return all(is_resolved(speedup_ci(baseline, s, confidence=confidence), margin) for s in samples[1:])


def _runner(session: Any, feed: Mapping[str, np.ndarray]) -> Callable[[], object]:
    run = session.run
    names = [i.name for i in session.get_inputs()]
    inputs = {name: feed[name] for name in names}
    return lambda: run(None, inputs)
