"""The webhook outbox: rows written with what they report, claimed and settled by a sender.

:func:`add_events` runs inside the transaction that records a decision or
changes a freeze, so a notification exists exactly when its cause committed.
Senders (any daemon, ``dqd notifications deliver``) claim due rows with a
short lease, so two senders do not call the same row at once; a sender killed
after the call and before settling leaves the row to be sent again with the
same event id, which the receiver de-duplicates.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from dqd.catalog.db import Transactions, as_utc, database_now
from dqd.catalog.tables import (
    AccuracyRow,
    DecisionRow,
    FreezeRow,
    ModelPathRow,
    NotificationRow,
    VariantRow,
)
from dqd.choice import headline_accuracy
from dqd.errors import NotFound
from dqd.notifications import Cause, Event, Outbox, Selection, body, selection_changed
from dqd.pathtext import is_inside_root


@dataclass(frozen=True)
class Notification:
    id: int
    event_id: str
    event: str
    url: str
    model: str
    host_class: str
    decision_id: int | None
    payload: dict[str, object]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None
    last_error: str | None
    state: str  # pending, delivered or failed


def _notification(row: NotificationRow) -> Notification:
    return Notification(
        id=row.id,
        event_id=row.event_id,
        event=row.event,
        url=row.url,
        model=str(row.payload.get("model", "")),
        host_class=row.host_class,
        decision_id=row.decision_id,
        payload=dict(row.payload),
        attempts=row.attempts,
        created_at=as_utc(row.created_at) or row.created_at,
        next_attempt_at=as_utc(row.next_attempt_at) or row.next_attempt_at,
        delivered_at=as_utc(row.delivered_at),
        failed_at=as_utc(row.failed_at),
        last_error=row.last_error,
        state="delivered" if row.delivered_at else "failed" if row.failed_at else "pending",
    )


# --- inside the recording transaction ---


def selection_of(session: Session, row: DecisionRow, *, frozen: bool = False) -> Selection:
    variant = session.get(VariantRow, row.variant_id) if row.variant_id is not None else None
    return Selection(
        decision_id=row.id,
        outcome=row.outcome,
        variant=variant.name if variant is not None else None,
        variant_output_path=variant.output_path if variant is not None else None,
        frozen=frozen,
    )


def serving_row(session: Session, sha256: str, host_class: str) -> tuple[DecisionRow, bool] | None:
    """The decision whose file (sha256, host class) serves, and whether a freeze holds it."""
    freeze = session.get(FreezeRow, (sha256, host_class))
    if freeze is not None:
        frozen = session.get(DecisionRow, freeze.decision_id)
        if frozen is not None:
            return frozen, True
    d = DecisionRow
    latest = session.scalars(
        select(d).where(d.sha256 == sha256, d.host_class == host_class).order_by(d.id.desc()).limit(1)
    ).first()
    return (latest, False) if latest is not None else None


def serving_selection(session: Session, sha256: str, host_class: str) -> Selection | None:
    found = serving_row(session, sha256, host_class)
    return selection_of(session, found[0], frozen=found[1]) if found is not None else None


def add_events(
    session: Session,
    outbox: Outbox,
    *,
    decision: DecisionRow,
    before: Selection | None,
    cause: Cause,
    now: datetime,
) -> int:
    """Outbox rows for what ``decision`` (new, or frozen/unfrozen to) changed; how many were written.

    An ``error`` decision is always an event; otherwise only a change of the file
    that (sha256, host class) serves (``before`` → the serving selection now).
    """
    if not outbox.urls:
        return 0
    if cause is Cause.DECISION and decision.outcome == "error":
        event, selection = Event.ERROR, selection_of(session, decision)
    else:
        serving = serving_row(session, decision.sha256, decision.host_class)
        if serving is None:
            return 0
        decision, frozen = serving
        selection = selection_of(session, decision, frozen=frozen)
        if not selection_changed(before, selection):
            return 0
        event = Event.SELECTION_CHANGED
    accuracy = _headline(session, decision)
    paths = list(
        session.scalars(
            select(ModelPathRow.path)
            .where(ModelPathRow.sha256 == decision.sha256, ModelPathRow.removed_at.is_(None))
            .order_by(ModelPathRow.path)
        )
    ) or [decision.path or decision.sha256]
    for model in paths:
        event_id = str(uuid.uuid4())
        payload = body(
            event_id=event_id,
            event=event,
            cause=cause,
            created_at=now,
            model=model,
            sha256=decision.sha256,
            host_class=decision.host_class,
            selection=selection,
            ort_version=decision.ort_version,
            speedup=decision.speedup,
            speedup_ci=(decision.speedup_ci_low, decision.speedup_ci_high)
            if decision.speedup_ci_low is not None and decision.speedup_ci_high is not None
            else None,
            accuracy=accuracy,
            error=decision.error,
            publish_dir=outbox.publish_dir,
            inside_root=is_inside_root(model),
        )
        for url in outbox.urls:
            session.add(
                NotificationRow(
                    event_id=event_id,
                    event=event.value,
                    url=url,
                    sha256=decision.sha256,
                    host_class=decision.host_class,
                    decision_id=decision.id,
                    payload=payload,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    session.flush()
    return len(paths) * len(outbox.urls)


def _headline(session: Session, decision: DecisionRow) -> tuple[str | None, float | None]:
    """The selected variant's headline accuracy as this decision measured it (None: the original)."""
    if decision.variant_id is None:
        return None, None
    a = AccuracyRow
    rows = session.scalars(
        select(a)
        .where(a.decision_id == decision.id, a.variant_id == decision.variant_id)
        .order_by(a.decisive.desc(), a.id)
    )
    for row in rows:
        metric, value = headline_accuracy(row.metrics)
        if metric is not None:
            return metric, value
    return None, None


# --- the senders' side ---


class OutboxStore:
    tx: Transactions

    def claim_notifications(self, *, lease_seconds: float, limit: int = 20) -> list[Notification]:
        """Due rows, leased to the caller for ``lease_seconds`` (its call's timeout and some)."""
        n = NotificationRow
        with self.tx.write() as session:
            now = database_now(session)
            due = select(n.id).where(
                n.delivered_at.is_(None),
                n.failed_at.is_(None),
                n.next_attempt_at <= now,
                or_(n.lease_expires_at.is_(None), n.lease_expires_at < now),
            )
            ids = list(session.scalars(due.order_by(n.id).limit(limit)))
            claimed = []
            for row_id in ids:
                # Guarded like the query: another sender may have claimed it since (Postgres).
                result = session.execute(
                    update(n)
                    .where(
                        n.id == row_id,
                        n.delivered_at.is_(None),
                        or_(n.lease_expires_at.is_(None), n.lease_expires_at < now),
                    )
                    .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(row_id)
            if not claimed:
                return []
            return [
                _notification(row)
                for row in session.scalars(select(n).where(n.id.in_(claimed)).order_by(n.id))
            ]

    def settle_notification(
        self,
        row_id: int,
        *,
        error: str | None,
        retry_in: timedelta | None = None,
        give_up_after: timedelta | None = None,
    ) -> str:
        """Record one call's outcome; the row's state after it (delivered, pending, failed)."""
        with self.tx.write() as session:
            row = session.get(NotificationRow, row_id)
            if row is None:
                raise NotFound(f"no notification {row_id}")
            now = database_now(session)
            row.attempts += 1
            row.lease_expires_at = None
            if error is None:
                row.delivered_at, row.last_error = now, None
                return "delivered"
            row.last_error = error[:2000]
            created = as_utc(row.created_at) or now
            if give_up_after is not None and now - created >= give_up_after:
                row.failed_at = now
                return "failed"
            row.next_attempt_at = now + (retry_in or timedelta(0))
            return "pending"

    def notifications(self, *, state: str | None = None, limit: int = 100) -> list[Notification]:
        """Newest first; ``state``: pending, delivered or failed."""
        n = NotificationRow
        stmt = select(n).order_by(n.id.desc()).limit(limit)
        if state == "delivered":
            stmt = stmt.where(n.delivered_at.is_not(None))
        elif state == "failed":
            stmt = stmt.where(n.failed_at.is_not(None))
        elif state == "pending":
            stmt = stmt.where(n.delivered_at.is_(None), n.failed_at.is_(None))
        with self.tx.read() as session:
            return [_notification(row) for row in session.scalars(stmt)]

    def retry_failed_notifications(self, ids: list[int] | None = None) -> int:
        """Failed rows (all, or ``ids``) due again now; how many."""
        n = NotificationRow
        with self.tx.write() as session:
            now = database_now(session)
            stmt = update(n).where(n.failed_at.is_not(None), n.delivered_at.is_(None))
            if ids is not None:
                stmt = stmt.where(n.id.in_(ids))
            # created_at restarts the give-up window: a retried row gets notifications.give_up_hours again.
            result = session.execute(stmt.values(failed_at=None, next_attempt_at=now, created_at=now))
            return int(result.rowcount)  # type: ignore[attr-defined]

    def next_notification_due(self) -> datetime | None:
        n = NotificationRow
        with self.tx.read() as session:
            value = session.scalar(
                select(n.next_attempt_at)
                .where(n.delivered_at.is_(None), n.failed_at.is_(None))
                .order_by(n.next_attempt_at)
                .limit(1)
            )
            return as_utc(value)
