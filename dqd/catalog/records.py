"""Recording what the engine measured and decided, and reading decisions back."""

from __future__ import annotations

from datetime import datetime
from typing import overload

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dqd.catalog.db import Transactions, utcnow
from dqd.catalog.jobs import finish_owned_job
from dqd.catalog.outbox import add_events, serving_selection
from dqd.catalog.rows import decision_from_row, variant_from_row
from dqd.catalog.tables import (
    AccuracyRow,
    BenchmarkRow,
    DecisionRow,
    ModelVersionRow,
    VariantRow,
)
from dqd.domain import (
    MAX_STORED_SAMPLES,
    DecisionRecord,
    EngineResult,
    HostInfo,
    SearchMode,
    VariantRecord,
    VariantResult,
    VariantSpec,
)
from dqd.notifications import Cause, Outbox
from dqd.serialize import catalog_details_json, graph_summary_json, plain_json


class RecordStore:
    tx: Transactions
    outbox: Outbox

    @overload
    def record_engine_result(
        self,
        host: HostInfo,
        result: EngineResult,
        *,
        job_id: int | None = None,
        complete_job: None = None,
        job_error: str | None = None,
        now: datetime | None = None,
    ) -> int: ...

    @overload
    def record_engine_result(
        self,
        host: HostInfo,
        result: EngineResult,
        *,
        job_id: int | None = None,
        complete_job: tuple[int, str],
        job_error: str | None = None,
        now: datetime | None = None,
    ) -> int | None: ...

    def record_engine_result(
        self,
        host: HostInfo,
        result: EngineResult,
        *,
        job_id: int | None = None,
        complete_job: tuple[int, str] | None = None,
        job_error: str | None = None,
        now: datetime | None = None,
    ) -> int | None:
        """Store variants, accuracy, benchmarks, the decision and its notifications in one transaction.

        Returns the decision id. ``complete_job=(job id, lease owner)`` finishes
        that job in the same transaction (``job_error``: as failed with it); if
        its lease is no longer ours nothing is recorded and None is returned:
        whoever holds the job now records it.
        """
        now = now or utcnow()
        with self.tx.write() as session:
            if complete_job is not None:
                if not finish_owned_job(session, *complete_job, now=now, error=job_error):
                    return None
                job_id = complete_job[0]
            self._ensure_content(session, result, now)
            before = serving_selection(session, result.sha256, host.host_class)
            variant_ids = {
                v.spec.key(v.ort_version): self._upsert_variant(session, result.sha256, v, now)
                for v in result.variants
            }

            def variant_id(spec: VariantSpec | None) -> int | None:
                if spec is None:
                    return None
                key = spec.key(result.ort_version)
                if key not in variant_ids:
                    placeholder = VariantResult(spec, result.ort_version, None, None, None, None)
                    variant_ids[key] = self._upsert_variant(session, result.sha256, placeholder, now)
                return variant_ids[key]

            decision = DecisionRow(
                sha256=result.sha256,
                host_class=host.host_class,
                host_id=host.host_id,
                job_id=job_id,
                ort_version=result.ort_version,
                search_mode=SearchMode(result.search_mode).value,
                policy_version=result.policy_version,
                outcome=result.outcome.value,
                variant_id=variant_id(result.selected),
                speedup=result.speedup,
                speedup_ci_low=result.speedup_ci[0] if result.speedup_ci else None,
                speedup_ci_high=result.speedup_ci[1] if result.speedup_ci else None,
                reasons=list(result.reasons),
                details=catalog_details_json(result.details),
                path=result.path,
                error=result.error,
                seconds=result.seconds,
                threads=max((b.threads for b in result.benchmarks), default=None),
                preflight_version=result.preflight_version,
                source_precision=result.source_precision,
                plan_fingerprint=result.plan_fingerprint,
                created_at=now,
            )
            session.add(decision)
            session.flush()
            for bench in result.benchmarks:
                session.add(
                    BenchmarkRow(
                        decision_id=decision.id,
                        sha256=result.sha256,
                        variant_id=variant_id(bench.spec),
                        host_id=host.host_id,
                        host_class=host.host_class,
                        ort_version=result.ort_version,
                        step=bench.step,
                        threads=bench.threads,
                        rounds=bench.latency.rounds,
                        median_ms=bench.latency.median_ms,
                        p90_ms=bench.latency.p90_ms,
                        p99_ms=bench.latency.p99_ms,
                        speedup=bench.speedup,
                        speedup_ci_low=bench.speedup_ci[0] if bench.speedup_ci else None,
                        speedup_ci_high=bench.speedup_ci[1] if bench.speedup_ci else None,
                        peak_rss_bytes=bench.peak_rss_bytes,
                        foreign_load=bench.foreign_load,
                        load_source=bench.load_source,
                        samples_ms=list(bench.latency.samples_ms[:MAX_STORED_SAMPLES]),
                        created_at=now,
                    )
                )
            for acc in result.accuracy:
                vid = variant_id(acc.spec)
                assert vid is not None
                session.add(
                    AccuracyRow(
                        decision_id=decision.id,
                        variant_id=vid,
                        input_source=acc.input_source.value,
                        metrics=plain_json(acc.metrics),
                        passed=acc.passed,
                        decisive=acc.decisive,
                        reason=acc.reason,
                        created_at=now,
                    )
                )
            session.flush()
            add_events(session, self.outbox, decision=decision, before=before, cause=Cause.DECISION, now=now)
            return decision.id

    @staticmethod
    def _ensure_content(session: Session, result: EngineResult, now: datetime) -> None:
        if session.get(ModelVersionRow, result.sha256) is None:
            session.add(
                ModelVersionRow(
                    sha256=result.sha256, size_bytes=result.source_size_bytes or 0, first_seen_at=now
                )
            )
            session.flush()
        summary = result.details.preflight
        if summary is not None:
            row = session.get(ModelVersionRow, result.sha256)
            if row is not None and row.summary is None:
                row.summary = graph_summary_json(summary)

    @staticmethod
    def _upsert_variant(session: Session, sha256: str, variant: VariantResult, now: datetime) -> int:
        key = variant.spec.key(variant.ort_version)
        row = session.scalar(
            select(VariantRow).where(VariantRow.source_sha256 == sha256, VariantRow.spec_key == key)
        )
        spec = variant.spec.to_dict()
        if row is None:
            row = VariantRow(
                source_sha256=sha256,
                spec_key=key,
                name=variant.spec.name,
                weight_type=spec["weight_type"],
                per_channel=spec["per_channel"],
                reduce_range=spec["reduce_range"],
                op_types=spec["op_types"],
                nodes_to_exclude=spec["nodes_to_exclude"],
                extra_options=plain_json(spec["extra_options"]),
                preprocess=spec["preprocess"],
                ort_version=variant.ort_version,
                created_at=now,
            )
            session.add(row)
        # A later run may have produced the file where an earlier one failed: keep the newest facts.
        if variant.output_path is not None or variant.error is not None:
            row.output_path = variant.output_path
            row.output_sha256 = variant.output_sha256
            row.size_bytes = variant.size_bytes
            row.quantize_seconds = variant.quantize_seconds
            row.error = variant.error
        session.flush()
        return row.id

    def latest_decision(
        self, sha256: str, host_class: str, *, ort_version: str | None = None
    ) -> DecisionRecord | None:
        stmt = select(DecisionRow).where(DecisionRow.sha256 == sha256, DecisionRow.host_class == host_class)
        if ort_version is not None:
            stmt = stmt.where(DecisionRow.ort_version == ort_version)
        with self.tx.read() as session:
            row = session.scalars(stmt.order_by(DecisionRow.id.desc()).limit(1)).first()
            return decision_from_row(row) if row is not None else None

    def latest_decisions_for_class(self, host_class: str) -> dict[str, DecisionRecord]:
        """The newest decision per model version for one host class."""
        newest = (
            select(func.max(DecisionRow.id))
            .where(DecisionRow.host_class == host_class)
            .group_by(DecisionRow.sha256)
            .scalar_subquery()
        )
        with self.tx.read() as session:
            rows = session.scalars(select(DecisionRow).where(DecisionRow.id.in_(newest)))
            return {row.sha256: decision_from_row(row) for row in rows}

    def get_variant(self, variant_id: int) -> VariantRecord | None:
        with self.tx.read() as session:
            row = session.get(VariantRow, variant_id)
            return variant_from_row(row) if row is not None else None
