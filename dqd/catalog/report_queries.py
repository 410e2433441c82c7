"""Catalog-wide aggregates for the report's plots and the metrics endpoint."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select

from dqd.catalog.db import Transactions
from dqd.catalog.rows import scatter_point_from_row, timeline_point_from_columns
from dqd.catalog.tables import AccuracyRow, BenchmarkRow, DecisionRow, ModelPathRow, VariantRow
from dqd.catalog.views import ScatterPoint, TimelinePoint
from dqd.choice import headline_accuracy

_IN_CHUNK = 500  # bound parameters per IN (...), as in queries.py


class ReportQueries:
    tx: Transactions

    def scatter_points(self) -> list[ScatterPoint]:
        """Every benchmarked variant of each latest decision with its decisive accuracy."""
        d, b, a, v = DecisionRow, BenchmarkRow, AccuracyRow, VariantRow
        newest = select(func.max(d.id)).group_by(d.sha256, d.host_class)
        stmt = (
            select(
                d.sha256,
                d.host_class,
                d.variant_id.label("selected"),
                b.variant_id,
                b.speedup,
                v.name,
                a.metrics,
                a.passed,
            )
            .join(b, b.decision_id == d.id)
            .join(v, v.id == b.variant_id)
            .join(a, (a.decision_id == d.id) & (a.variant_id == b.variant_id) & a.decisive.is_(True))
            .where(d.id.in_(newest), b.speedup.is_not(None))
            .order_by(b.id)
        )
        with self.tx.read() as session:
            rows = list(session.execute(stmt))
            path_stmt = select(ModelPathRow.sha256, func.min(ModelPathRow.path)).group_by(ModelPathRow.sha256)
            # A Result has .keys(): dict(result) would treat it as a mapping.
            paths = {sha: path for sha, path in session.execute(path_stmt)}
        points: dict[tuple[str, str, int], ScatterPoint] = {}
        for r in rows:
            _, value = headline_accuracy(r.metrics)
            if value is None:
                continue
            # The last benchmark of a variant within a decision is its final measurement.
            path = paths.get(r.sha256) or r.sha256[:12]
            points[(r.sha256, r.host_class, r.variant_id)] = scatter_point_from_row(r, path, value)
        return list(points.values())

    def first_reasons(self, decision_ids: Sequence[int]) -> dict[int, str]:
        """Each decision's first reason (its summary, e.g. why FP32 was kept), for the report's model list."""
        d = DecisionRow
        found: dict[int, str] = {}
        with self.tx.read() as session:
            for start in range(0, len(decision_ids), _IN_CHUNK):
                part = decision_ids[start : start + _IN_CHUNK]
                for decision_id, reasons, error in session.execute(
                    select(d.id, d.reasons, d.error).where(d.id.in_(part))
                ):
                    first = next(iter(reasons or []), None) or error
                    if first:
                        found[decision_id] = str(first)
        return found

    def timeline_points(self, *, limit: int = 5000) -> list[TimelinePoint]:
        """The newest ``limit`` decisions, oldest first, for the decision-history plot."""
        d = DecisionRow
        stmt = select(d.created_at, d.host_class, d.ort_version, d.outcome, d.speedup).order_by(d.id.desc())
        with self.tx.read() as session:
            rows = list(session.execute(stmt.limit(limit)))
        return [timeline_point_from_columns(*r) for r in reversed(rows)]
