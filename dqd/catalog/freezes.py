"""Freeze, unfreeze and roll back what a model version ships on a host class.

A freeze names one decision; while it exists, the publisher, ``dqd best`` and
the API serve that decision's file, whatever later (nightly) decisions select.
Each change notifies like a new decision (catalog.outbox), in its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from dqd.catalog.db import Transactions, utcnow
from dqd.catalog.outbox import add_events, selection_of, serving_row, serving_selection
from dqd.catalog.rows import decision_from_row
from dqd.catalog.tables import DecisionRow, FreezeRow, VariantRow
from dqd.domain import DecisionRecord, ModelPath
from dqd.errors import NotFound, UsageError
from dqd.notifications import Cause, Outbox, Selection


@dataclass(frozen=True)
class FreezeChange:
    model: str
    sha256: str
    host_class: str
    decision_id: int  # what serves now
    frozen: bool
    previous_decision_id: int | None
    notified: int  # events written to the outbox


class FreezeStore:
    tx: Transactions
    outbox: Outbox

    if TYPE_CHECKING:  # provided by the other parts of dqd.catalog.store.Catalog

        def resolve_model(self, ref: str) -> tuple[ModelPath | None, str]: ...

        def latest_decisions_for_class(self, host_class: str) -> dict[str, DecisionRecord]: ...

    def _named(self, ref: str) -> tuple[str, str]:
        """(the model's name for messages, its content)."""
        path, sha = self.resolve_model(ref)
        return (path.path if path is not None else sha), sha

    def freeze(self, ref: str, host_class: str, *, decision_id: int | None = None) -> FreezeChange:
        """Ship ``decision_id``'s file (default: what ships now) until :meth:`unfreeze`."""
        name, sha = self._named(ref)
        with self.tx.write() as session:
            if decision_id is None:
                found = serving_row(session, sha, host_class)
                if found is None:
                    raise NotFound(f"no decision yet for {name} on {host_class}: nothing to freeze")
                decision_id = found[0].id
            return self._set(session, name, sha, host_class, decision_id, Cause.FREEZE)

    def rollback(self, ref: str, host_class: str) -> FreezeChange:
        """Freeze the newest earlier decision that ships another file than the one shipped now."""
        name, sha = self._named(ref)
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
        name, sha = self._named(ref)
        with self.tx.write() as session:
            row = session.get(FreezeRow, (sha, host_class))
            if row is None:
                raise UsageError(f"{name} is not frozen on {host_class}")
            before = serving_selection(session, sha, host_class)
            session.delete(row)
            session.flush()
            serving = serving_row(session, sha, host_class)
            assert serving is not None  # the frozen decision is one of this content's: a latest exists
            latest = serving[0]
            notified = add_events(
                session, self.outbox, decision=latest, before=before, cause=Cause.UNFREEZE, now=utcnow()
            )
            return _change(name, sha, host_class, latest.id, before, notified, frozen=False)

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
        return _change(name, sha, host_class, decision_id, before, notified, frozen=True)

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


def _change(
    name: str,
    sha: str,
    host_class: str,
    decision_id: int,
    before: Selection | None,
    notified: int,
    *,
    frozen: bool,
) -> FreezeChange:
    return FreezeChange(
        name, sha, host_class, decision_id, frozen, before.decision_id if before else None, notified
    )


def _file_exists(session: Session, row: DecisionRow) -> bool:
    if row.variant_id is None:
        return True
    variant = session.get(VariantRow, row.variant_id)
    output = variant.output_path if variant is not None else None
    return output is not None and Path(output).is_file()
