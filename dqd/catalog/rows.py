"""Rows → frozen domain objects and read-side views. The only place that knows both shapes.

Queries select rows (or, on hot paths, plain column tuples) and hand them
here; what a view needs beyond its row (a variant's name, a model's path) is
an argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from dqd.catalog.db import as_utc
from dqd.catalog.tables import (
    AccuracyRow,
    BenchmarkRow,
    DecisionRow,
    HostRow,
    JobRow,
    ModelPathRow,
    PathVersionRow,
    RemovalBlockRow,
    VariantRow,
)
from dqd.catalog.views import (
    AccuracySummary,
    AccuracyView,
    BenchmarkView,
    DecisionView,
    LatestDecision,
    ModelListing,
    PathVersion,
    RemovalBlock,
    ScatterPoint,
    TimelinePoint,
)
from dqd.choice import RecordedDecision, headline_accuracy
from dqd.domain import (
    DecisionRecord,
    HostInfo,
    InputSource,
    Job,
    JobKind,
    JobState,
    ModelPath,
    Outcome,
    SearchMode,
    VariantRecord,
    VariantSpec,
)


def _utc(value):  # type: ignore[no-untyped-def]
    result = as_utc(value)
    assert result is not None
    return result


def job_from_row(row: JobRow) -> Job:
    return Job(
        id=row.id,
        kind=JobKind(row.kind),
        sha256=row.sha256,
        host_class=row.host_class,
        state=JobState(row.state),
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        priority=row.priority,
        idempotency_key=row.idempotency_key,
        source_path=row.source_path,
        last_error=row.last_error,
        lease_owner=row.lease_owner,
        lease_expires_at=as_utc(row.lease_expires_at),
        not_before=as_utc(row.not_before),
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        started_at=as_utc(row.started_at),
        finished_at=as_utc(row.finished_at),
        stage=row.stage,
        stage_started_at=as_utc(row.stage_started_at),
        lost_leases=row.lost_leases or 0,
    )


def host_from_row(row: HostRow) -> HostInfo:
    return HostInfo(
        host_id=row.id,
        hostname=row.hostname,
        host_class=row.host_class,
        arch=row.arch,
        cpu_model=row.cpu_model,
        isa_flags=tuple(row.isa_flags),
        usable_cores=row.usable_cores,
        os=row.os,
        ort_version=row.ort_version,
        onnx_version=row.onnx_version,
        dqd_version=row.dqd_version,
        declared=bool(row.declared),
    )


def path_from_row(row: ModelPathRow) -> ModelPath:
    return ModelPath(
        id=row.id,
        path=row.path,
        sha256=row.sha256,
        removed_at=as_utc(row.removed_at),
        first_seen_at=_utc(row.first_seen_at),
        last_seen_at=_utc(row.last_seen_at),
        size_bytes=row.size_bytes,
        mtime_ns=row.mtime_ns,
        refused_reason=row.refused_reason,
    )


def spec_from_row(row: VariantRow) -> VariantSpec:
    return VariantSpec.from_dict(
        {
            "weight_type": row.weight_type,
            "per_channel": row.per_channel,
            "reduce_range": row.reduce_range,
            "op_types": row.op_types,
            "nodes_to_exclude": row.nodes_to_exclude,
            "extra_options": row.extra_options,
            "preprocess": row.preprocess,
        }
    )


def variant_from_row(row: VariantRow) -> VariantRecord:
    return VariantRecord(
        id=row.id,
        source_sha256=row.source_sha256,
        spec=spec_from_row(row),
        spec_key=row.spec_key,
        ort_version=row.ort_version,
        output_path=row.output_path,
        output_sha256=row.output_sha256,
        size_bytes=row.size_bytes,
        quantize_seconds=row.quantize_seconds,
        error=row.error,
        created_at=_utc(row.created_at),
    )


def _precision(recorded: str | None) -> str:
    """A decision's source precision; NULL (decided before the column, or the model was not read) is FP32."""
    return recorded or "fp32"


def speedup_interval(low: float | None, high: float | None) -> tuple[float, float] | None:
    """A speed-up's confidence interval from its two columns (decisions and benchmark runs alike)."""
    return (low, high) if low is not None and high is not None else None


def decision_from_row(row: DecisionRow) -> DecisionRecord:
    ci = speedup_interval(row.speedup_ci_low, row.speedup_ci_high)
    return DecisionRecord(
        id=row.id,
        sha256=row.sha256,
        host_class=row.host_class,
        host_id=row.host_id,
        ort_version=row.ort_version,
        search_mode=SearchMode(row.search_mode),
        policy_version=row.policy_version,
        outcome=Outcome(row.outcome),
        variant_id=row.variant_id,
        speedup=row.speedup,
        speedup_ci=ci,
        reasons=tuple(row.reasons),
        details=dict(row.details or {}),
        error=row.error,
        seconds=row.seconds,
        created_at=_utc(row.created_at),
        threads=row.threads,
        path=row.path,
        preflight_version=row.preflight_version,
        source_precision=_precision(row.source_precision),
        plan_fingerprint=row.plan_fingerprint,
    )


def decision_view_from_row(row: DecisionRow, variant: str | None) -> DecisionView:
    """``variant``: the selected variant's name (None: nothing selected)."""
    return DecisionView(decision=decision_from_row(row), variant=variant, path=row.path)


def recorded_decision_from_row(row: DecisionRow, variant: VariantRow | None) -> RecordedDecision:
    """A decision row and its selected variant's row as :func:`dqd.choice.choose_best` reads them."""
    return RecordedDecision(
        decision_id=row.id,
        outcome=Outcome(row.outcome),
        decided_at=_utc(row.created_at),
        threads=row.threads,
        error=row.error,
        variant=variant.name if variant is not None else None,
        variant_output_path=variant.output_path if variant is not None else None,
        recorded_path=(row.details or {}).get("path"),
        source_precision=_precision(row.source_precision),
    )


def path_version_from_row(row: PathVersionRow) -> PathVersion:
    return PathVersion(row.sha256, _utc(row.seen_at), as_utc(row.superseded_at))


def accuracy_from_row(row: AccuracyRow, variant: str) -> AccuracyView:
    """``variant``: the evaluated variant's name."""
    return AccuracyView(
        id=row.id,
        decision_id=row.decision_id,
        variant_id=row.variant_id,
        variant=variant,
        input_source=InputSource(row.input_source),
        metrics=row.metrics,
        passed=row.passed,
        decisive=row.decisive,
        reason=row.reason,
        created_at=_utc(row.created_at),
    )


def benchmark_from_row(row: BenchmarkRow, names: Mapping[int, str]) -> BenchmarkView:
    """``names``: variant id → name; a run without a variant timed the shipped FP32."""
    return BenchmarkView(
        id=row.id,
        decision_id=row.decision_id,
        variant_id=row.variant_id,
        variant=names.get(row.variant_id, "?") if row.variant_id is not None else "fp32",
        host_class=row.host_class,
        host_id=row.host_id,
        ort_version=row.ort_version,
        step=row.step,
        threads=row.threads,
        rounds=row.rounds,
        median_ms=row.median_ms,
        p90_ms=row.p90_ms,
        p99_ms=row.p99_ms,
        speedup=row.speedup,
        speedup_ci=speedup_interval(row.speedup_ci_low, row.speedup_ci_high),
        peak_rss_bytes=row.peak_rss_bytes,
        samples_ms=[float(s) for s in row.samples_ms or []],
        created_at=_utc(row.created_at),
        foreign_load=row.foreign_load,
        load_source=row.load_source,
    )


def listing_from_columns(columns: Sequence[Any], decisions: list[LatestDecision]) -> ModelListing:
    """A model's row of a listing: the path columns ``list_models`` selects, in order, and its decisions."""
    path_id, path, sha, size, seen, removed, refused = columns
    return ModelListing(
        path_id=path_id,
        path=path,
        sha256=sha,
        size_bytes=size,
        last_seen_at=_utc(seen),
        removed_at=as_utc(removed),
        decisions=decisions,
        refused_reason=refused,
    )


def latest_decision_from_columns(
    decision_id: int, _sha: str, host_class: str, ort_version: str, outcome: str, variant_id: int | None,
    speedup: float | None, ci_low: float | None, ci_high: float | None, created_at: datetime,
    variant: str | None, input_source: str | None, metrics: Any, passed: bool | None, reason: str | None,
    threads: int | None, first_reason: str | None, source_precision: str | None,
) -> LatestDecision:  # fmt: skip
    """A row of ``QueryStore._latest_for``'s query, in its column order."""
    accuracy = None
    if input_source is not None:
        metric, value = headline_accuracy(metrics)
        accuracy = AccuracySummary(InputSource(input_source), bool(passed), metric, value, reason or "")
    return LatestDecision(
        decision_id=decision_id,
        host_class=host_class,
        ort_version=ort_version,
        outcome=Outcome(outcome),
        variant=variant,
        variant_id=variant_id,
        speedup=speedup,
        speedup_ci=speedup_interval(ci_low, ci_high),
        accuracy=accuracy,
        created_at=_utc(created_at),
        threads=threads,
        reason=first_reason,
        source_precision=_precision(source_precision),
    )


def scatter_point_from_row(row: Any, path: str, accuracy: float) -> ScatterPoint:
    """A row of ``ReportQueries.scatter_points``' query; ``accuracy``: its headline metric's value."""
    return ScatterPoint(
        path=path,
        host_class=row.host_class,
        variant=row.name,
        speedup=float(row.speedup),
        accuracy=accuracy,
        passed=bool(row.passed),
        selected=row.selected == row.variant_id,
    )


def timeline_point_from_columns(
    created_at: datetime, host_class: str, ort_version: str, outcome: str, speedup: float | None
) -> TimelinePoint:
    return TimelinePoint(_utc(created_at), host_class, ort_version, Outcome(outcome), speedup)


def removal_block_from_row(row: RemovalBlockRow) -> RemovalBlock:
    return RemovalBlock(row.root, row.reason, row.known, row.missing, row.host_id, _utc(row.blocked_at))
