"""``search = "thorough"``: walk the variant ladder inside the engine's isolated child.

The loop only measures; what to try next and what to pick are the pure
functions of :mod:`dqd.pipeline.ladder` and :mod:`dqd.pipeline.ladder_select`.
Per rung: build (reusing the engine's quantizer), skip the rest when its
graph is byte-identical to an earlier rung's, gate (over a stream with the
state fed back for stateful models), and time it against the shipped FP32
only when the answer can matter (:func:`dqd.pipeline.ladder.needs_timing`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import onnx

from dqd.choice import headline_accuracy
from dqd.domain import AccuracyResult, VariantSpec
from dqd.errors import EnvironmentFailure
from dqd.modelfile import model_files
from dqd.pipeline.benchmark import Contender, benchmark_interleaved, create_session
from dqd.pipeline.ladder import (
    ModelTraits,
    Plan,
    Rung,
    RungResult,
    Skipped,
    finalists,
    needs_playoff,
    needs_timing,
    next_step,
    plan_ladder,
)
from dqd.pipeline.ladder_rules import rules_for
from dqd.pipeline.ladder_select import Playoff, decide_ladder
from dqd.pipeline.policy import CandidateMeasurement, Decision
from dqd.pipeline.stateful import (
    StatePair,
    find_state_pairs,
    judge_stream,
    run_stream,
    stream_feeds,
)
from dqd.pipeline.workbench import CandidateRun, Workbench, step_name
from dqd.records import GraphSummary, LadderRecord, LadderRunRecord, StatefulRecord
from dqd.settings import AccuracySettings, LadderSettings
from dqd.text import first_line

logger = logging.getLogger(__name__)


@dataclass
class StreamEvaluation:
    """The stateful evaluation shared by every rung: feeds and FP32's outputs over them."""

    pairs: list[StatePair]
    feeds: list[dict[str, Any]]
    reference: list[list[Any]]


@dataclass
class _Ladder:
    bench: Workbench
    plan: Plan
    stream: StreamEvaluation | None
    clock: Callable[[], float]
    results: list[RungResult] = field(default_factory=list)
    measured: list[CandidateRun] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # graph digest -> first rung (or FP32) with it


def run_ladder(
    bench: Workbench,
    summary: GraphSummary,
    *,
    host_class: str,
    accuracy: AccuracySettings,
    settings: LadderSettings,
    margin: float,
) -> tuple[list[CandidateRun], Decision]:
    """Walk the ladder for one model: what every tried rung produced, and the decision.

    ``decision.record`` (a :class:`~dqd.records.LadderRecord`) holds the whole
    record: the host rule set (name and version), the model's traits, every
    rung tried or skipped with why, why the ladder stopped, and (``run``) the
    host class, the time taken and the stateful evaluation used.
    """
    rules = rules_for(host_class)
    traits = ModelTraits(summary.quantizable_top_level, summary.quantizable_in_subgraphs)
    plan = plan_ladder(traits, rules, bench.prepared.preprocess)
    # Per-model settings (nodes_to_exclude) reach every rung's spec, hence its file key and record.
    plan = replace(plan, rungs=tuple(replace(r, spec=bench.tailor(r.spec)) for r in plan.rungs))
    stateful: StatefulRecord | None = None
    try:
        stream = stream_evaluation(bench, summary, accuracy)
    except Exception as exc:  # FP32 itself cannot stream these feeds: judge single calls, and say so
        logger.warning("stream evaluation of %s failed: %s", bench.source, exc)
        stream = None
        pairs = tuple((p.input, p.output) for p in find_state_pairs(summary.inputs, summary.outputs))
        why = first_line(exc, limit=200, with_type=True)
        stateful = StatefulRecord(pairs, error=f"FP32 fails over a stream: {why}; gated per call")
    ladder = _Ladder(bench, plan, stream, time.monotonic)
    ladder.digests[graph_digest(bench.source)] = "the shipped FP32"
    started = ladder.clock()
    while True:
        step = next_step(
            plan,
            ladder.results,
            [s.name for s in ladder.skipped],
            elapsed=ladder.clock() - started,
            budget=settings.time_budget_seconds,
            margin=margin,
        )
        ladder.skipped.extend(step.skipped)
        if step.rung is None:
            stop_reason = step.stop_reason or "ladder complete"
            break
        _try_rung(ladder, step.rung)
    playoff = None
    contenders = finalists(ladder.results, margin)
    if needs_playoff(contenders, margin) and ladder.clock() - started < settings.time_budget_seconds:
        playoff = _playoff(ladder, contenders, margin)
    decision = decide_ladder(
        plan,
        ladder.results,
        ladder.skipped,
        stop_reason,
        margin=margin,
        noise=settings.noise,
        playoff=playoff,
    )
    if stream is not None:
        stateful = StatefulRecord(tuple((p.input, p.output) for p in stream.pairs), len(stream.feeds))
    assert isinstance(decision.record, LadderRecord)  # decide_ladder's
    run = LadderRunRecord(host_class, round(ladder.clock() - started, 3), stateful)
    return ladder.measured, replace(decision, record=replace(decision.record, run=run))


def stream_evaluation(
    bench: Workbench, summary: GraphSummary, accuracy: AccuracySettings
) -> StreamEvaluation | None:
    """For a stateful model, the stream every rung is judged on and FP32's outputs over it; else None."""
    pairs = find_state_pairs(summary.inputs, summary.outputs)
    if not pairs or bench.decoder is not None:  # a decoder is judged over its own generation
        return None
    deciding = bench.input_sets[0]
    feeds = stream_feeds(
        deciding.feeds,
        pairs,
        accuracy.sequence_length,
        seed=accuracy.seed,
        distribution=accuracy.float_distribution,
    )
    session = bench.fp32_session()
    reference = run_stream(lambda feed: session.run(None, dict(feed)), bench.output_names(), feeds, pairs)
    return StreamEvaluation(pairs, feeds, reference)


def _try_rung(ladder: _Ladder, rung: Rung) -> None:
    bench = ladder.bench
    started = ladder.clock()
    spec = rung.spec
    bench.report(f"rung {rung.index}: quantizing {spec.name}")
    variant = bench.build(spec)
    measured = CandidateRun(variant)
    ladder.measured.append(measured)
    if variant.error is not None or variant.output_path is None:
        failed = CandidateMeasurement(spec, quantize_error=variant.error or "no output file")
        ladder.results.append(RungResult(rung, failed, ladder.clock() - started))
        return
    path = Path(variant.output_path)
    digest = graph_digest(path)
    if digest in ladder.digests:
        twin = ladder.digests[digest]
        ladder.results.append(RungResult(rung, CandidateMeasurement(spec), ladder.clock() - started, twin))
        return
    ladder.digests[digest] = rung.name
    bench.report(f"rung {rung.index}: checking accuracy of {spec.name}")
    with bench.locked(exclusive=False):
        measured.accuracy = check_accuracy(bench, ladder.stream, spec, path)
    deciding = next(a for a in measured.accuracy if a.decisive)
    metric, value = headline_accuracy(deciding.metrics)
    measurement = CandidateMeasurement(
        spec,
        gate_passed=deciding.passed,
        gate_reason=deciding.reason,
        gate_source=deciding.input_source,
        accuracy_metric=metric,
        accuracy=value,
        size_bytes=variant.size_bytes,
    )
    if needs_timing(rung, deciding.passed, ladder.results):
        bench.report(f"rung {rung.index}: benchmarking {spec.name} against FP32")
        measurement = _time(bench, measured, measurement, path, rung)
    ladder.results.append(RungResult(rung, measurement, ladder.clock() - started))


def _playoff(ladder: _Ladder, contenders: Sequence[RungResult], margin: float) -> Playoff | None:
    """Time FP32 and the finalists together; their results then carry the playoff's speed-ups.

    Adaptive stopping only asks whether each beats FP32, which clear cases
    answer in a second; comparing finalists with each other needs more
    rounds, so the playoff runs at least half the benchmark's time budget.
    """
    bench = ladder.bench
    measured = {r.rung.name: m for r, m in zip(ladder.results, ladder.measured, strict=True)}
    names = [r.rung.name for r in contenders]
    settings = bench.benchmark_settings
    longer = settings.model_copy(update={"min_seconds": max(settings.min_seconds, settings.max_seconds / 2)})
    bench.report(f"playoff: timing {', '.join(names)} together against FP32")
    try:
        with bench.locked(exclusive=True):
            timed = benchmark_interleaved(
                [
                    Contender(None, bench.source),
                    *(
                        Contender(r.rung.spec, Path(measured[r.rung.name].variant.output_path or ""))
                        for r in contenders
                    ),
                ],
                bench.benchmark_feed,
                longer,
                threads=bench.threads,
                step=step_name("ladder:playoff", bench.timing_feeds()[0][0]),
            )
    except EnvironmentFailure:
        raise  # the host lock, not the finalists
    except Exception as exc:  # keep the separate timings; the decision says no playoff ran
        logger.warning("playoff of %s failed: %s", names, first_line(exc, limit=200, with_type=True))
        return None
    measured[names[0]].benchmarks.append(timed[0])  # the playoff's FP32 baseline
    by_name = dict(zip(names, timed[1:], strict=True))
    for name, timing in by_name.items():
        measured[name].benchmarks.append(timing)
    for index, rung_result in enumerate(ladder.results):
        if rung_result.rung.name in by_name:
            timing = by_name[rung_result.rung.name]
            joint = replace(rung_result.measurement, speedup=timing.speedup, speedup_ci=timing.speedup_ci)
            ladder.results[index] = replace(rung_result, measurement=joint)
    return Playoff({name: t.latency.samples_ms for name, t in by_name.items()}, margin)


def check_accuracy(
    bench: Workbench, stream: StreamEvaluation | None, spec: VariantSpec, path: Path
) -> list[AccuracyResult]:
    """The engine's per-call checks; for stateful models the stream decides and those are informative."""
    results = bench.check_accuracy(spec, path)
    if stream is None:
        return results
    names = bench.output_names()
    source = bench.input_sets[0].source
    try:
        session = create_session(path, bench.threads)
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
            deciding, measured.benchmarks = bench.time_against_fp32(
                contenders, step=f"ladder:{rung.index}:{rung.name}"
            )
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
