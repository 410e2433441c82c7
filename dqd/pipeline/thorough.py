"""``search = "thorough"``: walk the variant ladder inside the engine's isolated child.

The loop only measures; what to try next and what to pick are the pure
functions of :mod:`dqd.pipeline.ladder` and :mod:`dqd.pipeline.ladder_select`,
and how one rung is built, gated and timed is :mod:`dqd.pipeline.rung_trial`.
The finalists are then timed together in one interleaved run (the playoff).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from dqd.errors import EnvironmentFailure
from dqd.pipeline.benchmark import Contender, benchmark_interleaved
from dqd.pipeline.ladder import (
    ModelTraits,
    RungResult,
    finalists,
    needs_playoff,
    next_step,
    plan_ladder,
)
from dqd.pipeline.ladder_rules import rules_for
from dqd.pipeline.ladder_select import Playoff, decide_ladder, preference_order
from dqd.pipeline.matmul_rows import fewest_matmul_rows
from dqd.pipeline.policy import Decision
from dqd.pipeline.rung_trial import LadderState, StreamEvaluation, graph_digest, try_rung
from dqd.pipeline.screening import (
    PLAYOFF_MIN_ROUNDS,
    patience_seconds,
    playoff_settled,
    pooled_speedup,
)
from dqd.pipeline.stateful import find_state_pairs, run_stream, stream_feeds
from dqd.pipeline.workbench import CandidateRun, Workbench, step_name
from dqd.records import GraphSummary, LadderRecord, LadderRunRecord, StatefulRecord
from dqd.settings import AccuracySettings, LadderSettings
from dqd.text import first_line

logger = logging.getLogger(__name__)


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
    traits = ModelTraits(
        summary.quantizable_top_level, summary.quantizable_in_subgraphs, deciding_matmul_rows(bench)
    )
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
    ladder = LadderState(
        bench,
        plan,
        stream,
        time.monotonic,
        margin,
        screen=settings.screen,
        pilot_seconds=settings.pilot_seconds,
    )
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
            screen=settings.screen,
        )
        ladder.skipped.extend(step.skipped)
        if step.rung is None:
            stop_reason = step.stop_reason or "ladder complete"
            break
        try_rung(ladder, step.rung)
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


def deciding_matmul_rows(bench: Workbench) -> int | None:
    """A lower bound of the activation rows the model's weight MatMuls multiply on the deciding timing
    feed (MatMulNBits' speed hangs on it): from shape inference, and for a decoder exactly, from the
    tokens of its deciding step, since each of its projections multiplies one row per token."""
    feed = bench.benchmark_feed
    shapes = {name: tuple(np.shape(value)) for name, value in feed.items()}
    inferred = fewest_matmul_rows(bench.prepared.path, shapes)
    if bench.decoder is None:
        return inferred
    tokens = int(np.size(feed[bench.decoder.layout.input_ids]))
    return max(inferred or 0, tokens)


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


def _playoff(ladder: LadderState, contenders: Sequence[RungResult], margin: float) -> Playoff | None:
    """Time FP32 and the finalists together; their results then carry the playoff's speed-ups.

    Adaptive stopping only asks whether each beats FP32, which clear cases
    answer in a second; comparing finalists with each other needs more
    rounds, so without screening the playoff runs at least half the
    benchmark's time budget. With screening it reuses the sessions still
    open, pools each finalist's pilot pairs into its speed-up over FP32, and
    stops once the pick can no longer change
    (:func:`dqd.pipeline.screening.playoff_settled`); after a quarter of the
    budget (and at least :data:`PLAYOFF_MIN_ROUNDS` rounds) only differences
    whose point estimate clears the margin keep it going, up to the whole budget.
    """
    bench = ladder.bench
    measured = {r.rung.name: m for r, m in zip(ladder.results, ladder.measured, strict=True)}
    names = [r.rung.name for r in contenders]
    settings = bench.benchmark_settings
    paths = {name: Path(measured[name].variant.output_path or "") for name in names}
    pilots = [ladder.pilots.get(name) for name in names] if ladder.screen else []
    options: dict[str, Any] = {}
    if ladder.screen:
        lent = {bench.source: bench.fp32_session()}
        if ladder.leader is not None:
            lent[ladder.leader.path] = ladder.leader.session
        patience = patience_seconds(settings)
        started = time.monotonic()

        preference = preference_order(contenders)

        def settled(samples: Sequence[Sequence[float]]) -> bool:
            spent = time.monotonic() - started >= patience
            return playoff_settled(
                samples, margin, settings.confidence, pilots, preference=preference, patience_spent=spent
            )

        run_settings = settings
        options = {"sessions": lent, "settled": settled, "min_rounds": PLAYOFF_MIN_ROUNDS}
    else:
        run_settings = settings.model_copy(
            update={"min_seconds": max(settings.min_seconds, settings.max_seconds / 2)}
        )
    bench.report(f"playoff: timing {', '.join(names)} together against FP32")
    try:
        with bench.locked(exclusive=True):
            timed = benchmark_interleaved(
                [
                    Contender(None, bench.source),
                    *(Contender(r.rung.spec, paths[r.rung.name]) for r in contenders),
                ],
                bench.benchmark_feed,
                run_settings,
                threads=bench.threads,
                step=step_name("ladder:playoff", bench.timing_feeds()[0][0]),
                **options,
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
    pilot_of = dict(zip(names, pilots, strict=False))
    for index, rung_result in enumerate(ladder.results):
        name = rung_result.rung.name
        if name not in by_name:
            continue
        timing = by_name[name]
        speedup, ci = timing.speedup, timing.speedup_ci
        prior = pilot_of.get(name)
        if prior is not None:
            runs = [(timed[0].latency.samples_ms, timing.latency.samples_ms), prior]
            speedup, ci = pooled_speedup(runs, settings.confidence)
        joint = replace(rung_result.measurement, speedup=speedup, speedup_ci=ci)
        ladder.results[index] = replace(rung_result, measurement=joint)
    return Playoff({name: t.latency.samples_ms for name, t in by_name.items()}, margin, pooled=ladder.screen)
