"""The catalog schema (SQLAlchemy 2 typed ORM). Alembic migrations must match it.

Identity rules:
- a *model path* is a path relative to the watched root; it keeps the history
  of the contents it has held (``path_versions``) and is marked removed, never
  deleted;
- a *model version* is content, keyed by sha256; the same content at two paths
  is one model version, so its quantization work is shared;
- *variants* depend on content, spec and onnxruntime version, not on the host;
- *benchmarks* and *decisions* are per host class and onnxruntime version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    column,
    desc,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from dqd.pathtext import from_text, to_text

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SHA256 = String(64)
UTCDateTime = DateTime(timezone=True)


class _Names(TypeDecorator[str]):
    """Text that may hold file names which are not valid UTF-8 (paths, and messages naming them).

    Python gives such a name as a ``str`` with lone surrogates, which no
    driver accepts: it is stored in :func:`dqd.pathtext.to_text`'s form and read
    back exactly as it was given (backslashes are doubled in the column since
    migration 0006). Values a query compares with such a column bind through it too.
    """

    impl: type[String] = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return to_text(value) if value is not None else None

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return from_text(value) if value is not None else None


class NameText(_Names):
    """A ``Text`` column holding names (see :class:`_Names`)."""

    cache_ok = True  # SQLAlchemy asks each type class itself


class NameString(_Names):
    """A ``String(length)`` column holding names (see :class:`_Names`)."""

    impl = String
    cache_ok = True


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime}


class HostRow(Base):
    __tablename__ = "hosts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    host_class: Mapped[str] = mapped_column(String(64), index=True)
    arch: Mapped[str] = mapped_column(String(32))
    cpu_model: Mapped[str] = mapped_column(String(255))
    isa_flags: Mapped[list[Any]]
    usable_cores: Mapped[int] = mapped_column(Integer)
    os: Mapped[str] = mapped_column(String(255))
    ort_version: Mapped[str] = mapped_column(String(32))
    onnx_version: Mapped[str] = mapped_column(String(32))
    dqd_version: Mapped[str] = mapped_column(String(32))
    # The id and class were declared by configuration (allow_host_override), not detected.
    declared: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    first_seen_at: Mapped[datetime]
    last_heartbeat_at: Mapped[datetime] = mapped_column(index=True)


class ModelVersionRow(Base):
    """Content, keyed by sha256."""

    __tablename__ = "model_versions"

    sha256: Mapped[str] = mapped_column(SHA256, primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    first_seen_at: Mapped[datetime]
    summary: Mapped[dict[str, Any] | None]  # preflight facts: opsets, IR, inputs, op histogram


class ModelPathRow(Base):
    __tablename__ = "model_paths"
    # Keyset pages of `dqd models --sort -seen` / the API's sort=-seen (recently seen first).
    __table_args__ = (Index("ix_model_paths_seen", "last_seen_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(NameString(1024), unique=True)
    sha256: Mapped[str | None] = mapped_column(ForeignKey("model_versions.sha256"), index=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]
    refused_reason: Mapped[str | None] = mapped_column(NameText)  # e.g. a symlink leaving the root


class PathVersionRow(Base):
    """History: which content a path held, and since when."""

    __tablename__ = "path_versions"
    __table_args__ = (UniqueConstraint("path_id", "sha256", name="uq_path_versions_path_sha"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path_id: Mapped[int] = mapped_column(ForeignKey("model_paths.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("model_versions.sha256"), index=True)
    seen_at: Mapped[datetime]
    # Set when the path moved on to other content before this one was ever decided (a partial
    # write seen as complete, a replaced copy): hidden from the history unless asked for.
    superseded_at: Mapped[datetime | None]


ACTIVE_JOB_STATES_SQL = "state IN ('queued', 'running')"


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # The claim's order (dqd.catalog.jobs): priority descending, then oldest first.
        Index("ix_jobs_claim", "host_class", "state", desc(column("priority")), "id"),
        Index("ix_jobs_sha_class", "sha256", "host_class"),
        # One queued or running job per (model version, host class), whoever enqueues (migration 0008).
        Index(
            "uq_jobs_one_active",
            "sha256",
            "host_class",
            unique=True,
            postgresql_where=text(ACTIVE_JOB_STATES_SQL),
            sqlite_where=text(ACTIVE_JOB_STATES_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(ForeignKey("model_versions.sha256"))
    host_class: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    # Leases that expired on this job (its dqd process died or hung): not attempts, see catalog.jobs.
    lost_leases: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    source_path: Mapped[str | None] = mapped_column(NameString(1024))
    last_error: Mapped[str | None] = mapped_column(NameText)
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None]
    not_before: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # What the running attempt is doing now (preflight, quantize u8u8, benchmark u8u8, ...).
    stage: Mapped[str | None] = mapped_column(NameString(128))
    stage_started_at: Mapped[datetime | None]


class VariantRow(Base):
    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("source_sha256", "spec_key", name="uq_variants_source_spec"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_sha256: Mapped[str] = mapped_column(ForeignKey("model_versions.sha256"), index=True)
    spec_key: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128))
    weight_type: Mapped[str | None] = mapped_column(String(8))
    per_channel: Mapped[bool] = mapped_column(Boolean, default=False)
    reduce_range: Mapped[bool] = mapped_column(Boolean, default=False)
    op_types: Mapped[list[Any]]
    nodes_to_exclude: Mapped[list[Any]]
    extra_options: Mapped[dict[str, Any]]
    preprocess: Mapped[str] = mapped_column(String(64))
    ort_version: Mapped[str] = mapped_column(String(32))
    output_path: Mapped[str | None] = mapped_column(NameString(2048))
    output_sha256: Mapped[str | None] = mapped_column(SHA256)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    quantize_seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(NameText)
    created_at: Mapped[datetime]


class DecisionRow(Base):
    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_latest", "sha256", "host_class", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("model_versions.sha256"))
    host_class: Mapped[str] = mapped_column(String(64), index=True)
    host_id: Mapped[str | None] = mapped_column(ForeignKey("hosts.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    ort_version: Mapped[str] = mapped_column(String(32))
    search_mode: Mapped[str] = mapped_column(String(16))
    policy_version: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id"))
    speedup: Mapped[float | None] = mapped_column(Float)
    speedup_ci_low: Mapped[float | None] = mapped_column(Float)
    speedup_ci_high: Mapped[float | None] = mapped_column(Float)
    reasons: Mapped[list[Any]]
    details: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(NameText)
    seconds: Mapped[float | None] = mapped_column(Float)
    # Intra-op threads the variants were timed at; None: nothing was timed (errors, skips).
    threads: Mapped[int | None] = mapped_column(Integer)
    # The path the engine was given: relative to the watched folder, or absolute (`dqd process`).
    path: Mapped[str | None] = mapped_column(NameString(1024))
    # What preflight and its pre-fixes could repair when this was decided; None: before pre-fixes.
    preflight_version: Mapped[str | None] = mapped_column(String(32))
    # The float precision of the model as given (fp32, fp16, bf16, fp64); None: fp32, before this column.
    source_precision: Mapped[str | None] = mapped_column(String(8))
    # ModelPlan.fingerprint() of the plan it was made under; None: before migration 0009.
    plan_fingerprint: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(index=True)


class BenchmarkRow(Base):
    __tablename__ = "benchmark_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    decision_id: Mapped[int | None] = mapped_column(
        ForeignKey("decisions.id", ondelete="CASCADE"), index=True
    )
    sha256: Mapped[str] = mapped_column(ForeignKey("model_versions.sha256"), index=True)
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id"))  # None: shipped FP32
    host_id: Mapped[str | None] = mapped_column(ForeignKey("hosts.id"))
    host_class: Mapped[str] = mapped_column(String(64))
    ort_version: Mapped[str] = mapped_column(String(32))
    step: Mapped[str] = mapped_column(String(64))
    threads: Mapped[int] = mapped_column(Integer)
    rounds: Mapped[int] = mapped_column(Integer)
    median_ms: Mapped[float] = mapped_column(Float)
    p90_ms: Mapped[float] = mapped_column(Float)
    p99_ms: Mapped[float] = mapped_column(Float)
    speedup: Mapped[float | None] = mapped_column(Float)
    speedup_ci_low: Mapped[float | None] = mapped_column(Float)
    speedup_ci_high: Mapped[float | None] = mapped_column(Float)
    peak_rss_bytes: Mapped[int | None] = mapped_column(BigInteger)
    samples_ms: Mapped[list[Any]]
    # Others' use of the CPU while it ran (dqd.hostload: a fraction of its wall time); None before 0010.
    foreign_load: Mapped[float | None] = mapped_column(Float)
    load_source: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]


class AccuracyRow(Base):
    __tablename__ = "accuracy_evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    decision_id: Mapped[int | None] = mapped_column(
        ForeignKey("decisions.id", ondelete="CASCADE"), index=True
    )
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id"), index=True)
    input_source: Mapped[str] = mapped_column(String(16))
    metrics: Mapped[dict[str, Any]]
    passed: Mapped[bool] = mapped_column(Boolean)
    decisive: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(NameText)
    created_at: Mapped[datetime]


class RemovalBlockRow(Base):
    """A scan that would have removed too many models at once, for one watched root.

    While a row exists nothing under that root is marked removed and ``/readyz``
    fails; it goes when the folder's models come back or ``dqd prune`` confirms.
    """

    __tablename__ = "removal_blocks"

    root: Mapped[str] = mapped_column(NameString(1024), primary_key=True)
    reason: Mapped[str] = mapped_column(NameText)
    known: Mapped[int] = mapped_column(Integer)
    missing: Mapped[int] = mapped_column(Integer)
    host_id: Mapped[str | None] = mapped_column(String(32))
    blocked_at: Mapped[datetime]


class FreezeRow(Base):
    """A model version whose host class ships one chosen decision's file, whatever is decided later.

    ``dqd freeze`` and ``dqd rollback`` write it, ``dqd unfreeze`` deletes it;
    the nightly run still measures and records, but what is loaded and
    published follows this row (catalog.freezes).
    """

    __tablename__ = "freezes"

    sha256: Mapped[str] = mapped_column(ForeignKey("model_versions.sha256"), primary_key=True)
    host_class: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"))
    reason: Mapped[str] = mapped_column(String(16))  # freeze | rollback
    created_at: Mapped[datetime]


class NotificationRow(Base):
    """The outbox: one webhook call to make, written in the transaction of what it reports.

    One row per (event, URL); every URL of one event gets the same ``event_id``
    so a receiver de-duplicates redeliveries by it (catalog.outbox).
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("event_id", "url", name="uq_notifications_event_url"),
        Index("ix_notifications_due", "delivered_at", "failed_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    event: Mapped[str] = mapped_column(String(32))  # selection_changed | error
    url: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(SHA256)
    host_class: Mapped[str] = mapped_column(String(64))
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id", ondelete="SET NULL"))
    payload: Mapped[dict[str, Any]]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]  # given up (notifications.give_up_hours); `dqd notifications retry`
