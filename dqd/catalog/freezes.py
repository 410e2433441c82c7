"""Freeze, unfreeze and roll back what a model version ships on a host class.

A freeze names one decision; while it exists, the publisher, ``dqd best`` and
the API serve that decision's file, whatever later (nightly) decisions select.
Each change notifies like a new decision (catalog.outbox), in its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from dqd.catalog.db import Transactions, as_utc, utcnow
from dqd.catalog.outbox import add_events, selection_of, serving_row, serving_selection
from dqd.catalog.rows import decision_from_row
from dqd.catalog.tables import DecisionRow, FreezeRow, VariantRow
from dqd.domain import DecisionRecord, ModelPath
from dqd.errors import NotFound, UsageError
from dqd.notifications import Cause, Outbox


@dataclass(frozen=True)
class Freeze:
    sha256: str
    host_class: str
    decision_id: int
    reason: str  # freeze | rollback
    created_at: datetime


@dataclass(frozen=True)
class FreezeChange:
    model: str
    sha256: str
    host_class: str
    decision_id: int | None  # what serves now (None: nothing decided)
    frozen: bool
    previous_decision_id: int | None
    notified: int  # events written to the outbox


def _freeze(row: FreezeRow) -> Freeze:
    return Freeze(
        row.sha256, row.host_class, row.decision_id, row.reason, as_utc(row.created_at) or row.created_at
    )


class FreezeStore:
    tx: Transactions
    outbox: Outbox

    if TYPE_CHECKING:  # provided by the other parts of dqd.catalog.store.Catalog

        def resolve_model(self, ref: str) -> tuple[ModelPath | None, str]: ...

        def latest_decisions_for_class(self, host_class: str) -> dict[str, DecisionRecord]: ...

    def freeze(self, ref: str, host_class: str, *, decision_id: int | None = None) -> FreezeChange:
        """Ship ``decision_id``'s file (default: what ships now) until :meth:`unfreeze`."""
        path, sha = self.resolve_model(ref)
        name = path.path if path is not None else sha
        with self.tx.write() as session:
            if decision_id is None:
                found = serving_row(session, sha, host_class)
                if found is None:
                    raise NotFound(f"no decision yet for {name} on {host_class}: nothing to freeze")
                decision_id = found[0].id
            return self._set(session, name, sha, host_class, decision_id, Cause.FREEZE)

    def rollback(self, ref: str, host_class: str) -> FreezeChange:
        """Freeze the newest earlier decision that ships another file than the one shipped now."""
        path, sha = self.resolve_model(ref)
        name = path.path if path is not None else sha
        with self.tx.write() as session:
            now_serving = serving_selection(session, sha, host_class)
            if now_serving is None:
                raise NotFound(f"no decision yet for {name} on {host_class}: nothing to roll back")
            d = DecisionRow
            earlier = session.scalars(
                select(d)
                .where(
                    d.sha256 == sha,
                    d.host_class == host_class,
                    d.id < now_serving.decision_id,
                    d.outcome != "error",
                )
                .order_by(d.id.desc())
            )
            for row in earlier:
                if selection_of(session, row).file_key != now_serving.file_key and _file_exists(session, row):
                    return self._set(session, name, sha, host_class, row.id, Cause.ROLLBACK)
            raise UsageError(
                f"{name} on {host_class}: no earlier decision ships another file than decision "
                f"{now_serving.decision_id}; `dqd show {name}` lists the decisions"
            )

    def unfreeze(self, ref: str, host_class: str) -> FreezeChange:
        """Serve the latest decision again."""
        path, sha = self.resolve_model(ref)
        name = path.path if path is not None else sha
        with self.tx.write() as session:
            row = session.get(FreezeRow, (sha, host_class))
            if row is None:
                raise UsageError(f"{name} is not frozen on {host_class}")
            before = serving_selection(session, sha, host_class)
            session.delete(row)
            session.flush()
            after = serving_row(session, sha, host_class)
            notified = (
                add_events(
                    session, self.outbox, decision=after[0], before=before, cause=Cause.UNFREEZE, now=utcnow()
                )
                if after is not None
                else []
            )
            return FreezeChange(
                name,
                sha,
                host_class,
                after[0].id if after else None,
                False,
                before.decision_id if before else None,
                len(notified) * len(self.outbox.urls),
            )

    def _set(
        self, session: Session, name: str, sha: str, host_class: str, decision_id: int, cause: Cause
    ) -> FreezeChange:
        decision = session.get(DecisionRow, decision_id)
        if decision is None or decision.sha256 != sha or decision.host_class != host_class:
            raise NotFound(f"decision {decision_id} is not one of {name} on {host_class}")
        if decision.outcome == "error":
            raise UsageError(f"decision {decision_id} of {name} ended in error: there is no file to ship")
        if not _file_exists(session, decision):
            raise UsageError(f"decision {decision_id} of {name}: its variant file is gone (removed by gc?)")
        before = serving_selection(session, sha, host_class)
        now = utcnow()
        row = session.get(FreezeRow, (sha, host_class))
        if row is None:
            session.add(
                FreezeRow(
                    sha256=sha,
                    host_class=host_class,
                    decision_id=decision_id,
                    reason=cause.value,
                    created_at=now,
                )
            )
        else:
            row.decision_id, row.reason, row.created_at = decision_id, cause.value, now
        session.flush()
        notified = add_events(session, self.outbox, decision=decision, before=before, cause=cause, now=now)
        return FreezeChange(
            name,
            sha,
            host_class,
            decision_id,
            True,
            before.decision_id if before else None,
            len(notified) * len(self.outbox.urls),
        )

    def freezes(self, host_class: str | None = None) -> list[Freeze]:
        stmt = select(FreezeRow).order_by(FreezeRow.created_at.desc())
        if host_class is not None:
            stmt = stmt.where(FreezeRow.host_class == host_class)
        with self.tx.read() as session:
            return [_freeze(row) for row in session.scalars(stmt)]

    def serving_decisions_for_class(self, host_class: str) -> dict[str, tuple[DecisionRecord, bool]]:
        """Per model version, the decision whose file ships on ``host_class``, and whether it is frozen."""
        latest = self.latest_decisions_for_class(host_class)
        serving = {sha: (decision, False) for sha, decision in latest.items()}
        with self.tx.read() as session:
            for freeze in session.scalars(select(FreezeRow).where(FreezeRow.host_class == host_class)):
                row = session.get(DecisionRow, freeze.decision_id)
                if row is not None:
                    serving[freeze.sha256] = (decision_from_row(row), True)
        return serving


def _file_exists(session: Session, row: DecisionRow) -> bool:
    if row.variant_id is None:
        return True
    variant = session.get(VariantRow, row.variant_id)
    output = variant.output_path if variant is not None else None
    return output is not None and Path(output).is_file()
