"""Rows → frozen domain objects. The only place that knows both shapes."""

from __future__ import annotations

from dqd.catalog.db import as_utc
from dqd.catalog.tables import DecisionRow, HostRow, JobRow, ModelPathRow, VariantRow
from dqd.domain import (
    DecisionRecord,
    HostInfo,
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
    )
