"""Store functions only the daemon needs: what its host class has never been asked to do."""

from __future__ import annotations

from sqlalchemy import and_, exists, func, select

from dqd.catalog.db import Transactions
from dqd.catalog.paths import in_watched_tree
from dqd.catalog.rows import decision_from_row
from dqd.catalog.tables import DecisionRow, JobRow, ModelPathRow
from dqd.domain import DecisionRecord, JobKind


class DaemonQueries:
    tx: Transactions

    def contents_without_job(self, host_class: str, *, limit: int | None = None) -> list[tuple[str, str]]:
        """(sha256, one current path) for content at a live path that has no quantize job for ``host_class``.

        A daemon of a class that joins an existing tree uses this to queue the
        content other classes have already processed.
        """
        has_job = exists().where(
            and_(
                JobRow.sha256 == ModelPathRow.sha256,
                JobRow.host_class == host_class,
                JobRow.kind == JobKind.QUANTIZE.value,
            )
        )
        stmt = (
            select(ModelPathRow.sha256, func.min(ModelPathRow.path))
            .where(
                ModelPathRow.removed_at.is_(None),
                ModelPathRow.sha256.is_not(None),
                in_watched_tree(),
                ~has_job,
            )
            .group_by(ModelPathRow.sha256)
            .order_by(ModelPathRow.sha256)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.tx.read() as session:
            return [(sha, path) for sha, path in session.execute(stmt) if sha]

    def recent_decisions(self, limit: int = 10) -> list[DecisionRecord]:
        """The newest decisions, any class, newest first (for ``dqd status``)."""
        stmt = select(DecisionRow).order_by(DecisionRow.id.desc()).limit(limit)
        with self.tx.read() as session:
            return [decision_from_row(row) for row in session.scalars(stmt)]
