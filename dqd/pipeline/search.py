"""Search modes: a workbench in, the measurements and the decision out.

The design two-step, the ladder (:mod:`dqd.pipeline.thorough`) and a per-model
pin are the three; :func:`search` picks the one a model's settings ask for.
"""

from __future__ import annotations

from dataclasses import replace

from dqd.domain import SearchMode, VariantSpec
from dqd.pipeline.policy import (
    CandidateMeasurement,
    Decision,
    decide_design,
    decide_pinned,
    design_specs,
    next_design_step,
    policy_version_for,
)
from dqd.pipeline.thorough import run_ladder
from dqd.pipeline.workbench import CandidateRun, Workbench
from dqd.records import GraphSummary
from dqd.settings import AccuracySettings, LadderSettings


def search(
    bench: Workbench,
    summary: GraphSummary,
    *,
    pin: VariantSpec | None,
    mode: SearchMode,
    host_class: str,
    accuracy: AccuracySettings,
    ladder: LadderSettings,
    margin: float,
) -> tuple[list[CandidateRun], Decision]:
    """The per-model pin when there is one, else the search mode's walk over candidates."""
    if pin is not None:
        return run_pinned(bench, pin, margin, mode)
    if mode is SearchMode.THOROUGH:
        return run_ladder(
            bench, summary, host_class=host_class, accuracy=accuracy, settings=ladder, margin=margin
        )
    return run_design(bench, bench.prepared.preprocess, margin)


def run_design(bench: Workbench, preprocess: str, margin: float) -> tuple[list[CandidateRun], Decision]:
    """The design two-step: measure U8U8, then U8S8 only if U8U8 does not qualify; decide.

    A search mode is a function of this shape (workbench in, measurements and
    decision out); the ladder is the other one.
    """
    specs = {spec.weight_type: spec for spec in design_specs(preprocess)}
    measured: list[CandidateRun] = []
    while (step := next_design_step(_measurements(measured), margin=margin)) is not None:
        spec = specs[step]
        measured.append(bench.measure(spec, step=spec.name))
    decision = decide_design(_measurements(measured), margin=margin)
    return measured, decision


def _measurements(measured: list[CandidateRun]) -> list[CandidateMeasurement]:
    # measure always says what happened; a missing one would stall next_design_step's count.
    assert all(m.measurement is not None for m in measured)
    return [m.measurement for m in measured if m.measurement is not None]


def run_pinned(
    bench: Workbench, pin: VariantSpec, margin: float, mode: SearchMode
) -> tuple[list[CandidateRun], Decision]:
    """Build, gate and time exactly the pinned spec; :func:`decide_pinned` ships it whatever it measured."""
    measured = bench.measure(pin, step="pinned")
    assert measured.measurement is not None  # measure always says what happened
    decision = decide_pinned(measured.measurement, margin=margin)
    # Recorded under the mode's policy version, so staleness checks treat it like any decision made there.
    return [measured], replace(decision, policy_version=policy_version_for(mode))
