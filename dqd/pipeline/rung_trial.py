"""Try one rung of the ladder: build it, then gate and time it, in one of two orders.

Without screening (``ladder.screen = false``): gate, then time the rung in a
run of its own against FP32 when the answer can matter
(:func:`dqd.pipeline.ladder.needs_timing`). With screening: time it first in a
short pilot beside FP32 and the leader, on sessions kept open across rungs,
and gate it only when it could still be selected (:mod:`dqd.pipeline.screening`).
Either way a rung whose graph is byte-identical to an earlier one is neither
gated nor timed. Runs in the engine's isolated child.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import onnx

from dqd.choice import headline_accuracy
from dqd.domain import AccuracyResult, BenchmarkResult, VariantSpec
from dqd.errors import EnvironmentFailure
from dqd.modelfile import model_files
from dqd.pipeline.benchmark import Contender, benchmark_interleaved, create_session
from dqd.pipeline.ladder import Plan, Rung, RungResult, Skipped, needs_timing
from dqd.pipeline.policy import CandidateMeasurement, Speed
from dqd.pipeline.screening import (
    PILOT_MIN_ROUNDS,
    Pairs,
    not_worth_gating,
    pilot_settled,
)
from dqd.pipeline.stateful import StatePair, judge_stream, run_stream
from dqd.pipeline.workbench import CandidateRun, Workbench, step_name
from dqd.text import first_line

logger = logging.getLogger(__name__)


@dataclass
class StreamEvaluation:
    """The stateful evaluation shared by every rung: feeds and FP32's outputs over them."""

    pairs: list[StatePair]
    feeds: list[dict[str, Any]]
    reference: list[list[Any]]


@dataclass(frozen=True)
class Leader:
    """The fastest rung so far that passed the gate and is significantly faster than FP32, with its
    session kept open so that each pilot times it beside the next rung."""

    name: str
    spec: VariantSpec
    path: Path
    session: Any
    speedup: float


@dataclass
class LadderState:
    bench: Workbench
    plan: Plan
    stream: StreamEvaluation | None
    clock: Callable[[], float]
    margin: float  # the benchmark's decision margin
    screen: bool = False  # ladder.screen
    pilot_seconds: float = 0.25  # ladder.pilot_seconds
    results: list[RungResult] = field(default_factory=list)
    measured: list[CandidateRun] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # graph digest -> first rung (or FP32) with it
    leader: Leader | None = None  # screening only
    pilots: dict[str, Pairs] = field(default_factory=dict)  # rung -> its pilot's (FP32, rung) latencies


def try_rung(state: LadderState, rung: Rung) -> None:
    """Build ``rung``, then gate and time it (in the order ``state.screen`` says); record what it gave."""
    bench = state.bench
    started = state.clock()
    spec = rung.spec
    bench.report(f"rung {rung.index}: quantizing {spec.name}")
    variant = bench.build(spec)
    measured = CandidateRun(variant)
    state.measured.append(measured)
    if variant.error is not None or variant.output_path is None:
        failed = CandidateMeasurement(spec, quantize_error=variant.error or "no output file")
        state.results.append(RungResult(rung, failed, state.clock() - started))
        return
    path = Path(variant.output_path)
    digest = graph_digest(path)
    if digest in state.digests:
        twin = state.digests[digest]
        state.results.append(RungResult(rung, CandidateMeasurement(spec), state.clock() - started, twin))
        return
    state.digests[digest] = rung.name
    built = CandidateMeasurement(spec, size_bytes=variant.size_bytes)
    if state.screen:
        result = _screened(state, rung, measured, built, path)
    else:
        result = _gated_then_timed(state, rung, measured, built, path)
    state.results.append(replace(result, seconds=state.clock() - started))


def _gated_then_timed(
    state: LadderState, rung: Rung, measured: CandidateRun, built: CandidateMeasurement, path: Path
) -> RungResult:
    measurement = _gate(state, rung, measured, built, path)
    if needs_timing(rung, measurement.gate_passed is True, state.results):
        state.bench.report(f"rung {rung.index}: benchmarking {rung.name} against FP32")
        measurement = _time(state.bench, measured, measurement, path, rung)
    return RungResult(rung, measurement, 0.0)


def _screened(
    state: LadderState, rung: Rung, measured: CandidateRun, built: CandidateMeasurement, path: Path
) -> RungResult:
    bench = state.bench
    settings = bench.benchmark_settings
    leader = state.leader
    beside = f" and {leader.name}" if leader is not None else ""
    bench.report(f"rung {rung.index}: screening {rung.name} against FP32{beside}")
    try:
        session = create_session(path, bench.threads)
    except Exception:  # onnxruntime refuses the variant: the gate records why
        return RungResult(rung, _gate(state, rung, measured, built, path), 0.0)
    try:
        with bench.locked(exclusive=True):  # no other dqd work disturbs timings (dqd.hostlock)
            pilot = _pilot(state, rung, path, session)
    except EnvironmentFailure:
        raise  # the host lock, not the variant
    except Exception as exc:  # onnxruntime failing to run the variant is a result, not a crash
        logger.debug("pilot of %s failed", rung.name, exc_info=True)
        error = first_line(exc, limit=200, with_type=True)
        gated = _gate(state, rung, measured, built, path, session)
        return RungResult(rung, replace(gated, benchmark_error=error), 0.0)
    fp32, timed = pilot[0], pilot[-1]
    state.pilots[rung.name] = (fp32.latency.samples_ms, timed.latency.samples_ms)
    measurement = replace(built, speedup=timed.speedup, speedup_ci=timed.speedup_ci)
    leader_ms = (leader.name, pilot[1].latency.samples_ms) if leader is not None else None
    assert timed.speedup is not None and timed.speedup_ci is not None  # a candidate's timing has both
    why_not = not_worth_gating(
        timed.speedup,
        timed.speedup_ci,
        timed.latency.samples_ms,
        leader_ms,
        state.margin,
        settings.confidence,
    )
    if why_not is not None:
        measured.benchmarks = [fp32, timed]
        return RungResult(rung, measurement, 0.0, screened_out=why_not)
    measurement = _gate(state, rung, measured, measurement, path, session)
    informative: list[BenchmarkResult] = []
    if measurement.gate_passed and len(bench.timing_feeds()) > 1:
        with bench.locked(exclusive=True):
            contenders = [Contender(None, bench.source), Contender(rung.spec, path)]
            lent = {bench.source: bench.fp32_session(), path: session}
            informative = bench.time_informative(contenders, step=_step(rung), sessions=lent)
    measured.benchmarks = [*informative, fp32, timed]  # the deciding feed's timings last
    result = RungResult(rung, measurement, 0.0)
    speedup = measurement.speedup or 0.0
    faster = measurement.gate_passed is True and result.speed(state.margin) is Speed.FASTER
    if faster and (leader is None or speedup > leader.speedup):
        state.leader = Leader(rung.name, rung.spec, path, session, speedup)
    return result


def _pilot(state: LadderState, rung: Rung, path: Path, session: Any) -> list[BenchmarkResult]:
    """FP32, the leader (if any) and ``rung`` interleaved on the deciding feed, until the rung's speed
    over FP32 is resolved or the leader is clearly faster; the results in that order."""
    bench = state.bench
    settings = bench.benchmark_settings
    contenders = [Contender(None, bench.source)]
    sessions = {bench.source: bench.fp32_session(), path: session}
    if state.leader is not None:
        contenders.append(Contender(state.leader.spec, state.leader.path))
        sessions[state.leader.path] = state.leader.session
    contenders.append(Contender(rung.spec, path))
    started = state.clock()

    def settled(samples: Sequence[Sequence[float]]) -> bool:
        may_accept = state.clock() - started >= settings.min_seconds
        return pilot_settled(samples, state.margin, settings.confidence, may_accept=may_accept)

    return benchmark_interleaved(
        contenders,
        bench.benchmark_feed,
        settings,
        threads=bench.threads,
        step=step_name(_step(rung), bench.timing_feeds()[0][0]),
        sessions=sessions,
        settled=settled,
        first_check=state.pilot_seconds,
        min_rounds=PILOT_MIN_ROUNDS,
    )


def _step(rung: Rung) -> str:
    return f"ladder:{rung.index}:{rung.name}"


def _gate(
    state: LadderState,
    rung: Rung,
    measured: CandidateRun,
    measurement: CandidateMeasurement,
    path: Path,
    session: Any = None,
) -> CandidateMeasurement:
    """``measurement`` with the deciding accuracy check's verdict and headline accuracy."""
    bench = state.bench
    bench.report(f"rung {rung.index}: checking accuracy of {rung.name}")
    with bench.locked(exclusive=False):
        measured.accuracy = check_accuracy(bench, state.stream, rung.spec, path, session)
    deciding = next(a for a in measured.accuracy if a.decisive)
    metric, value = headline_accuracy(deciding.metrics)
    return replace(
        measurement,
        gate_passed=deciding.passed,
        gate_reason=deciding.reason,
        gate_source=deciding.input_source,
        accuracy_metric=metric,
        accuracy=value,
    )


def check_accuracy(
    bench: Workbench, stream: StreamEvaluation | None, spec: VariantSpec, path: Path, session: Any = None
) -> list[AccuracyResult]:
    """The engine's per-call checks; for stateful models the stream decides and those are informative."""
    results = bench.check_accuracy(spec, path, session)
    if stream is None:
        return results
    names = bench.output_names()
    source = bench.input_sets[0].source
    try:
        session = session if session is not None else create_session(path, bench.threads)
        steps = run_stream(lambda feed: session.run(None, dict(feed)), names, stream.feeds, stream.pairs)
    except Exception as exc:  # a variant onnxruntime refuses fails the gate; it is not a crash
        reason = f"variant fails over a stream: {first_line(exc, limit=200, with_type=True)}"
        decisive = AccuracyResult(spec, source, {}, False, reason, True)
    else:
        metrics, passed, reason = judge_stream(names, stream.reference, steps, bench.thresholds)
        decisive = AccuracyResult(spec, source, metrics, passed, reason, True)
    return [decisive, *(replace(r, decisive=False) for r in results)]


def _time(
    bench: Workbench, measured: CandidateRun, measurement: CandidateMeasurement, path: Path, rung: Rung
) -> CandidateMeasurement:
    try:
        with bench.locked(exclusive=True):  # no other dqd work disturbs timings (dqd.hostlock)
            contenders = [Contender(None, bench.source), Contender(rung.spec, path)]
            deciding, measured.benchmarks = bench.time_against_fp32(contenders, step=_step(rung))
    except EnvironmentFailure:
        raise  # the host lock, not the variant
    except Exception as exc:  # onnxruntime refusing the variant is a result, not a crash
        logger.debug("benchmark of %s failed", rung.name, exc_info=True)
        return replace(measurement, benchmark_error=first_line(exc, limit=200, with_type=True))
    timed = deciding[1]
    return replace(measurement, speedup=timed.speedup, speedup_ci=timed.speedup_ci)


def graph_digest(path: Path) -> str:
    """sha256 of the model without its metadata (provenance differs per spec) plus any external data."""
    model = onnx.load(str(path), load_external_data=False)
    del model.metadata_props[:]
    digest = hashlib.sha256(model.SerializeToString(deterministic=True))
    for data in model_files(path)[1:]:
        with data.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
