"""The persistent job queue: enqueue, claim with a lease, renew, finish.

A job is one (model version, host class). Workers claim only jobs of their own
class. A running job whose lease expired (its worker died) is claimable again.
On Postgres the claim uses ``FOR UPDATE SKIP LOCKED`` so concurrent daemons
never take the same job; on SQLite the ``BEGIN IMMEDIATE`` write lock
serializes claims.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dqd.catalog.db import Transactions, as_utc, database_now, is_sqlite
from dqd.catalog.rows import job_from_row
from dqd.catalog.tables import HostRow, JobRow
from dqd.domain import Job, JobKind, JobState
from dqd.errors import NotFound, UsageError
from dqd.retry import retry_decision

ACTIVE_STATES = (JobState.QUEUED.value, JobState.RUNNING.value)
# A job whose dqd process was lost this often (kill -9, OOM kill of the daemon, a hang past the
# lease) ends failed: a model that somehow takes its daemon down must not loop forever, while
# restarts for other reasons (deploys, a crash loop fixed later) cost nobody an attempt.
LOST_LEASES_MAX = 10
STAGE_LENGTH = 128  # jobs.stage is VARCHAR(128): Postgres refuses longer (a ladder rung's long name)


class JobStore:
    tx: Transactions

    def enqueue(
        self,
        sha256: str,
        host_class: str,
        *,
        kind: JobKind = JobKind.QUANTIZE,
        source_path: str | None = None,
        idempotency_key: str | None = None,
        priority: int = 0,
        max_attempts: int = 3,
        now: datetime | None = None,
    ) -> Job | None:
        """Queue a job; None when its idempotency key, or an active job for the same work, exists.

        The default key is the (model version, host class) pair for a first
        quantization: a content is quantized once per class however many paths hold it.
        """
        key = idempotency_key or f"{kind.value}:{sha256}:{host_class}"
        with self.tx.write() as session:
            now = now or database_now(session)
            if session.scalar(select(JobRow.id).where(JobRow.idempotency_key == key)) is not None:
                return None
            active = session.scalar(
                select(JobRow.id).where(
                    JobRow.sha256 == sha256,
                    JobRow.host_class == host_class,
                    JobRow.state.in_(ACTIVE_STATES),
                )
            )
            if active is not None:
                return None
            row = JobRow(
                kind=kind.value,
                sha256=sha256,
                host_class=host_class,
                state=JobState.QUEUED.value,
                attempts=0,
                max_attempts=max_attempts,
                priority=priority,
                idempotency_key=key,
                source_path=source_path,
                created_at=now,
                updated_at=now,
            )
            try:
                # A savepoint: another daemon may insert the same key between our check and
                # this insert (Postgres, read committed); the unique key then says "duplicate".
                with session.begin_nested():
                    session.add(row)
                    session.flush()
            except IntegrityError:
                return None
            return job_from_row(row)

    def claim_next_job(
        self, host_class: str, owner: str, lease_seconds: float, *, now: datetime | None = None
    ) -> Job | None:
        with self.tx.write() as session:
            now = now or database_now(session)
            while True:
                row = self._next_claimable(session, host_class, now)
                if row is None:
                    return None
                if row.state == JobState.RUNNING.value:
                    # Its dqd process died or hung: not the model's failure (a model's crash is its
                    # engine child's, recorded as an error), so the attempt is given back.
                    row.lost_leases = (row.lost_leases or 0) + 1
                    row.attempts = max(0, row.attempts - 1)
                    if row.lost_leases >= LOST_LEASES_MAX:
                        row.state = JobState.FAILED.value
                        row.last_error = (
                            f"the dqd process running it was lost {row.lost_leases} times (lease expired: "
                            f"killed or hung); last error: {row.last_error or 'none recorded'}"
                        )
                        row.finished_at = row.updated_at = now
                        _end_attempt(row)
                        session.flush()
                        continue
                    row.last_error = f"lease of {row.lease_owner} expired; job returned to the queue"
                row.state = JobState.RUNNING.value
                row.attempts += 1
                row.lease_owner = owner
                row.lease_expires_at = now + timedelta(seconds=lease_seconds)
                row.started_at = now
                row.updated_at = now
                row.stage = row.stage_started_at = None  # a dead worker's last stage is not this attempt's
                session.flush()
                return job_from_row(row)

    def _next_claimable(self, session: Session, host_class: str, now: datetime) -> JobRow | None:
        """An expired lease first (its dqd process died: it has waited longest), then the queue.

        Two range scans of ``ix_jobs_claim`` (class, state, priority desc, id), each
        stopping at its first unlocked row, rather than one OR over the class's whole
        queue: Postgres could only answer that by sorting every queued job of the
        class for each claim (25 ms at 20,000 queued jobs, measured by
        tests/perf/queue_load.py).
        """
        expired = and_(JobRow.state == JobState.RUNNING.value, JobRow.lease_expires_at < now)
        due = and_(
            JobRow.state == JobState.QUEUED.value,
            or_(JobRow.not_before.is_(None), JobRow.not_before <= now),
        )
        for condition in (expired, due):
            stmt = (
                select(JobRow)
                .where(JobRow.host_class == host_class, condition)
                .order_by(JobRow.priority.desc(), JobRow.id)
                .limit(1)
            )
            if not is_sqlite(self.tx.engine):
                stmt = stmt.with_for_update(skip_locked=True)
            row = session.scalars(stmt).first()
            if row is not None:
                return row
        return None

    def renew_lease(
        self, job_id: int, owner: str, lease_seconds: float, *, now: datetime | None = None
    ) -> bool:
        """Extend a lease; False when the job is no longer ours (expired and re-claimed, cancelled)."""
        with self.tx.write() as session:
            now = now or database_now(session)
            row = session.get(JobRow, job_id)
            if row is None or row.lease_owner != owner or row.state != JobState.RUNNING.value:
                return False
            row.lease_expires_at = now + timedelta(seconds=lease_seconds)
            row.updated_at = now
            return True

    def complete_job(self, job_id: int, owner: str, *, now: datetime | None = None) -> bool:
        with self.tx.write() as session:
            return finish_owned_job(session, job_id, owner, now=now or database_now(session))

    def supersede_job(self, job_id: int, owner: str, reason: str, *, now: datetime | None = None) -> bool:
        """Cancel a job whose content is at no path any more: nothing to do, nothing went wrong."""
        with self.tx.write() as session:
            now = now or database_now(session)
            row = self._owned(session, job_id, owner)
            if row is None:
                return False
            row.state = JobState.CANCELLED.value
            row.last_error = f"superseded: {reason}"
            row.finished_at = row.updated_at = now
            _end_attempt(row)
            return True

    def set_job_stage(self, job_id: int, owner: str, stage: str, started_at: datetime) -> bool:
        """Record what the running attempt is doing; False when the job is no longer ours."""
        with self.tx.write() as session:
            row = self._owned(session, job_id, owner)
            if row is None:
                return False
            row.stage = stage[:STAGE_LENGTH]
            row.stage_started_at = started_at
            return True

    def fail_job(
        self,
        job_id: int,
        owner: str,
        error: str,
        *,
        permanent: bool,
        backoff_seconds: float = 30.0,
        now: datetime | None = None,
    ) -> JobState | None:
        """Record an error: permanent or out of attempts → failed; else requeued with backoff."""
        with self.tx.write() as session:
            now = now or database_now(session)
            row = self._owned(session, job_id, owner)
            if row is None:
                return None
            row.last_error = error
            _end_attempt(row)
            row.updated_at = now
            decision = retry_decision(
                row.attempts, row.max_attempts, permanent=permanent, backoff_seconds=backoff_seconds, now=now
            )
            row.state = decision.state.value
            if decision.final:
                row.finished_at = now
            else:
                row.not_before = decision.not_before
            return decision.state

    def release_job(self, job_id: int, owner: str, *, now: datetime | None = None) -> bool:
        """Give a job back unfinished (shutdown): the attempt does not count."""
        with self.tx.write() as session:
            now = now or database_now(session)
            row = self._owned(session, job_id, owner)
            if row is None:
                return False
            _give_back(row, now)
            return True

    def defer_job(
        self, job_id: int, owner: str, reason: str, *, delay_seconds: float, now: datetime | None = None
    ) -> bool:
        """Put a job back to wait ``delay_seconds`` for the host, not the model: the attempt does not count.

        ``reason`` is its ``last_error`` (the NOTE of ``dqd jobs``) until it runs again.
        """
        with self.tx.write() as session:
            now = now or database_now(session)
            row = self._owned(session, job_id, owner)
            if row is None:
                return False
            _give_back(row, now)
            row.last_error = reason
            row.not_before = now + timedelta(seconds=delay_seconds)
            return True

    def retry_job(self, job_id: int, *, now: datetime | None = None) -> Job:
        """Put a failed or cancelled job back in the queue with fresh attempts."""
        with self.tx.write() as session:
            now = now or database_now(session)
            row = session.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job {job_id}")
            if row.state in ACTIVE_STATES:
                return job_from_row(row)
            active = session.scalar(
                select(JobRow.id).where(
                    JobRow.sha256 == row.sha256,
                    JobRow.host_class == row.host_class,
                    JobRow.state.in_(ACTIVE_STATES),
                )
            )
            if active is not None:
                raise UsageError(
                    f"job {active} is already queued or running for this model version and host class: "
                    f"nothing to retry (see `dqd jobs`)"
                )
            row.state = JobState.QUEUED.value
            row.attempts = 0
            row.not_before = None
            row.finished_at = None
            row.updated_at = now
            session.flush()
            return job_from_row(row)

    def cancel_job(self, job_id: int, *, now: datetime | None = None) -> Job:
        with self.tx.write() as session:
            now = now or database_now(session)
            row = session.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job {job_id}")
            if row.state in ACTIVE_STATES:
                row.state = JobState.CANCELLED.value
                _end_attempt(row)
                row.finished_at = row.updated_at = now
            session.flush()
            return job_from_row(row)

    def get_job(self, job_id: int) -> Job:
        with self.tx.read() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job {job_id}")
            return job_from_row(row)

    def list_jobs(
        self,
        *,
        states: Iterable[JobState] = (),
        host_class: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Job]:
        stmt = select(JobRow).order_by(JobRow.id.desc()).offset(offset)
        wanted = [state.value for state in states]
        if wanted:
            stmt = stmt.where(JobRow.state.in_(wanted))
        if host_class:
            stmt = stmt.where(JobRow.host_class == host_class)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.tx.read() as session:
            return [job_from_row(row) for row in session.scalars(stmt)]

    def queue_depth(self) -> dict[str, int]:
        """Job count by state (every state present, zero when empty)."""
        counts = {state.value: 0 for state in JobState}
        with self.tx.read() as session:
            for state, count in session.execute(select(JobRow.state, func.count()).group_by(JobRow.state)):
                counts[state] = count
        return counts

    def fleet_ages(self) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
        """Seconds, on the database's clock: since the oldest queued job of each host class was
        queued, and since each (host class, host id) last heartbeat (the alert rules' inputs)."""
        with self.tx.read() as session:
            now = database_now(session)
            oldest = session.execute(
                select(JobRow.host_class, func.min(JobRow.created_at))
                .where(JobRow.state == JobState.QUEUED.value)
                .group_by(JobRow.host_class)
            ).all()
            beats = session.execute(select(HostRow.host_class, HostRow.id, HostRow.last_heartbeat_at)).all()
        return (
            {host_class: _seconds_since(now, at) for host_class, at in oldest},
            {(host_class, host_id): _seconds_since(now, at) for host_class, host_id, at in beats},
        )

    @staticmethod
    def _owned(session: Session, job_id: int, owner: str) -> JobRow | None:
        return owned_job(session, job_id, owner)


def _seconds_since(now: datetime, then: datetime) -> float:
    return max(0.0, (now - (as_utc(then) or now)).total_seconds())


def owned_job(session: Session, job_id: int, owner: str, *, lock: bool = False) -> JobRow | None:
    """The job's row if ``owner`` holds its lease and it is running; ``lock``: hold the row (Postgres)."""
    # SQLite's BEGIN IMMEDIATE already serializes writers; Postgres needs the row lock.
    row = session.get(JobRow, job_id, with_for_update=True if lock and not _on_sqlite(session) else None)
    if row is None or row.lease_owner != owner or row.state != JobState.RUNNING.value:
        return None
    return row


def finish_owned_job(
    session: Session, job_id: int, owner: str, *, now: datetime, error: str | None = None
) -> bool:
    """In the caller's transaction: the job is done (``error``: failed with it); False if not ours.

    ``record_engine_result`` calls this in the transaction that records the
    decision, so a kill can never leave a decision whose job runs again.
    """
    row = owned_job(session, job_id, owner, lock=True)
    if row is None:
        return False
    row.state = JobState.DONE.value if error is None else JobState.FAILED.value
    if error is not None:
        row.last_error = error
    row.finished_at = row.updated_at = now
    _end_attempt(row)
    return True


def _give_back(row: JobRow, now: datetime) -> None:
    """Back to the queue, this attempt not counted (the process's or the host's doing, not the model's)."""
    row.state = JobState.QUEUED.value
    row.attempts = max(0, row.attempts - 1)
    _end_attempt(row)
    row.updated_at = now


def _end_attempt(row: JobRow) -> None:
    row.lease_owner = row.lease_expires_at = None
    row.stage = row.stage_started_at = None


def _on_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"
