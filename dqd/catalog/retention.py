"""What the catalog says about retention (see :mod:`dqd.retention`): one read, and the busy re-check."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from dqd.catalog.db import Transactions
from dqd.catalog.paths import in_watched_tree
from dqd.catalog.tables import DecisionRow, FreezeRow, JobRow, ModelPathRow, RemovalBlockRow, VariantRow
from dqd.domain import JobState
from dqd.retention import RetentionView


class RetentionStore:
    tx: Transactions

    def retention_view(self) -> RetentionView:
        """Every recorded variant file, those a decision `dqd best` can return selects, and the rest."""
        d, v = DecisionRow, VariantRow
        # The candidates `dqd best` picks from (catalog.detail_queries.best_choice), for every
        # content, host class and onnxruntime version, and the frozen decisions.
        latest = select(func.max(d.id)).group_by(d.sha256, d.host_class, d.ort_version, d.threads)
        frozen = select(FreezeRow.decision_id)
        selected_ids = select(d.variant_id).where(
            or_(d.id.in_(latest), d.id.in_(frozen)), d.variant_id.is_not(None)
        )
        with self.tx.read() as session:
            files: dict[str, set[str]] = defaultdict(set)
            for path, sha in session.execute(
                select(v.output_path, v.source_sha256).where(v.output_path.is_not(None))
            ):
                if path:
                    files[path].add(sha)
            selected = session.scalars(select(v.output_path).where(v.id.in_(selected_ids))).all()
            paths = session.execute(
                select(ModelPathRow.path, ModelPathRow.removed_at).where(in_watched_tree())
            ).all()
            blocks = session.scalars(select(RemovalBlockRow.root).order_by(RemovalBlockRow.root)).all()
            busy = self._running(session, None)
        return RetentionView(
            variant_files={path: frozenset(shas) for path, shas in files.items()},
            selected=frozenset(p for p in selected if p),
            busy=busy,
            removed_models=tuple(sorted(p for p, removed in paths if removed is not None)),
            removal_blocks=tuple(blocks),
            sources=tuple(sorted(p for p, removed in paths if removed is None)),
        )

    def running_contents(self, contents: Collection[str]) -> frozenset[str]:
        """Those of ``contents`` a job is running on now (checked again just before a removal)."""
        with self.tx.read() as session:
            return self._running(session, contents)

    @staticmethod
    def _running(session: Session, contents: Collection[str] | None) -> frozenset[str]:
        stmt = select(JobRow.sha256).where(JobRow.state == JobState.RUNNING.value).distinct()
        if contents is not None:
            stmt = stmt.where(JobRow.sha256.in_(list(contents)))
        return frozenset(session.scalars(stmt))
