"""Read-side queries for the CLI, the HTTP API and the report.

Lists are built in two steps so that a page costs the same at 10 or 10,000
models: first the page of paths (keyset on an indexed, unique sort key), then
the latest decisions of just those contents through ``ix_decisions_latest``
(sha256, host_class, id), then their decisive accuracy rows. Wide JSON
columns (reasons, details) are only read where a person asked for one model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from dqd.catalog.db import Transactions, as_utc
from dqd.catalog.detail_queries import DetailQueries, headline_accuracy
from dqd.catalog.rows import job_from_row
from dqd.catalog.tables import AccuracyRow, DecisionRow, JobRow, ModelPathRow, VariantRow
from dqd.catalog.views import (
    AccuracySummary,
    JobPage,
    LatestDecision,
    ModelPage,
    ModelSummary,
    decode_cursor,
    encode_cursor,
)
from dqd.domain import JobState, Outcome
from dqd.errors import UsageError

ModelSort = Literal["path", "-path", "seen", "-seen"]
MODEL_SORTS: tuple[str, ...] = ("path", "-path", "seen", "-seen")
_IN_CHUNK = 500  # bound parameters per IN (...): far below SQLite's and Postgres' limits


def chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class QueryStore(DetailQueries):
    tx: Transactions

    # --- models ---

    def list_models(
        self,
        *,
        host_class: str | None = None,
        outcome: Outcome | None = None,
        search: str | None = None,
        include_removed: bool = False,
        sort: str = "path",
        limit: int | None = None,
        cursor: str | None = None,
        offset: int = 0,
    ) -> ModelPage:
        """Models with their latest decision per host class (only ``host_class``'s when given).

        ``outcome`` keeps models whose latest decision (for ``host_class``, or
        for any class) has that outcome. ``cursor`` (keyset) and ``offset``
        both page; the cursor stays stable while the catalog grows.
        """
        if sort not in MODEL_SORTS:
            raise UsageError(f"invalid sort {sort!r}; allowed: {', '.join(MODEL_SORTS)}")
        stmt = self._model_page_stmt(host_class, outcome, search, include_removed, sort, cursor)
        if offset:
            stmt = stmt.offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit + 1)  # one more tells whether a next page exists
        with self.tx.read() as session:
            rows = list(session.execute(stmt))
            more = limit is not None and len(rows) > limit
            rows = rows[:limit] if limit is not None else rows
            shas = sorted({row.sha256 for row in rows if row.sha256})
            latest = self._latest_for(session, shas, host_class)
        items = [
            ModelSummary(
                path_id=row.id,
                path=row.path,
                sha256=row.sha256,
                size_bytes=row.size_bytes,
                last_seen_at=as_utc(row.last_seen_at),  # type: ignore[arg-type]
                removed_at=as_utc(row.removed_at),
                decisions=latest.get(row.sha256 or "", []),
            )
            for row in rows
        ]
        next_cursor = _model_cursor(rows[-1], sort) if more and rows else None
        return ModelPage(items=items, next_cursor=next_cursor)

    def _model_page_stmt(
        self,
        host_class: str | None,
        outcome: Outcome | None,
        search: str | None,
        include_removed: bool,
        sort: str,
        cursor: str | None,
    ) -> Select[*tuple[Any, ...]]:
        p = ModelPathRow
        # Columns, not ORM entities: building 10,000 objects costs more than the query.
        stmt = select(p.id, p.path, p.sha256, p.size_bytes, p.last_seen_at, p.removed_at)
        if not include_removed:
            stmt = stmt.where(p.removed_at.is_(None))
        if search:
            stmt = stmt.where(
                or_(
                    p.path.contains(search, autoescape=True),
                    p.sha256.startswith(search.lower(), autoescape=True),
                )
            )
        if host_class is not None or outcome is not None:
            stmt = stmt.where(_has_latest_decision(host_class, outcome))
        descending = sort.startswith("-")
        if sort.lstrip("-") == "path":
            order: list[Any] = [p.path.desc() if descending else p.path]
            if cursor is not None:
                (last_path,) = decode_cursor(cursor, 1)
                stmt = stmt.where(p.path < str(last_path) if descending else p.path > str(last_path))
        else:
            order = [p.last_seen_at.desc(), p.id.desc()] if descending else [p.last_seen_at, p.id]
            if cursor is not None:
                seen_text, last_id = decode_cursor(cursor, 2)
                seen = _parse_time(seen_text)
                after = (p.last_seen_at < seen) if descending else (p.last_seen_at > seen)
                tie = (p.id < _as_int(last_id)) if descending else (p.id > _as_int(last_id))
                stmt = stmt.where(or_(after, and_(p.last_seen_at == seen, tie)))
        return stmt.order_by(*order)

    def _latest_for(
        self, session: Session, shas: Sequence[str], host_class: str | None
    ) -> dict[str, list[LatestDecision]]:
        """Newest decision per (content, host class) for these contents, with the decisive accuracy."""
        d = DecisionRow
        found: list[Any] = []
        for part in chunks(shas):
            newest = select(func.max(d.id)).where(d.sha256.in_(part))
            if host_class is not None:
                newest = newest.where(d.host_class == host_class)
            newest = newest.group_by(d.sha256, d.host_class)
            stmt = (
                select(
                    d.id,
                    d.sha256,
                    d.host_class,
                    d.ort_version,
                    d.outcome,
                    d.variant_id,
                    d.speedup,
                    d.speedup_ci_low,
                    d.speedup_ci_high,
                    d.created_at,
                    VariantRow.name,
                )
                .outerjoin(VariantRow, VariantRow.id == d.variant_id)
                .where(d.id.in_(newest))
            )
            found.extend(session.execute(stmt))
        accuracy = self._decisive_accuracy(session, [(r.id, r.variant_id) for r in found if r.variant_id])
        result: dict[str, list[LatestDecision]] = {}
        for r in found:
            ci = (r.speedup_ci_low, r.speedup_ci_high) if r.speedup_ci_low is not None else None
            result.setdefault(r.sha256, []).append(
                LatestDecision(
                    decision_id=r.id,
                    host_class=r.host_class,
                    ort_version=r.ort_version,
                    outcome=Outcome(r.outcome),
                    variant=r.name,
                    variant_id=r.variant_id,
                    speedup=r.speedup,
                    speedup_ci=ci,
                    accuracy=accuracy.get(r.id),
                    created_at=as_utc(r.created_at),  # type: ignore[arg-type]
                )
            )
        for decisions in result.values():
            decisions.sort(key=lambda item: item.host_class)
        return result

    @staticmethod
    def _decisive_accuracy(session: Session, pairs: Sequence[tuple[int, int]]) -> dict[int, AccuracySummary]:
        """decision id → the decisive evaluation of its selected variant."""
        wanted = dict(pairs)
        summaries: dict[int, AccuracySummary] = {}
        a = AccuracyRow
        for part in chunks(list(wanted)):
            stmt = select(a.decision_id, a.variant_id, a.input_source, a.metrics, a.passed, a.reason).where(
                a.decision_id.in_(part), a.decisive.is_(True)
            )
            for row in session.execute(stmt):
                if wanted.get(row.decision_id) != row.variant_id:
                    continue
                metric, value = headline_accuracy(row.metrics)
                summaries[row.decision_id] = AccuracySummary(
                    input_source=row.input_source,
                    passed=row.passed,
                    metric=metric,
                    value=value,
                    reason=row.reason,
                )
        return summaries

    # --- jobs ---

    def jobs_page(
        self,
        *,
        states: Iterable[JobState] = (),
        host_class: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        offset: int = 0,
    ) -> JobPage:
        """Jobs, newest first; keyset on the id."""
        stmt = select(JobRow).order_by(JobRow.id.desc())
        wanted = [state.value for state in states]
        if wanted:
            stmt = stmt.where(JobRow.state.in_(wanted))
        if host_class:
            stmt = stmt.where(JobRow.host_class == host_class)
        if cursor is not None:
            (last_id,) = decode_cursor(cursor, 1)
            stmt = stmt.where(JobRow.id < _as_int(last_id))
        if offset:
            stmt = stmt.offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit + 1)
        with self.tx.read() as session:
            rows = list(session.scalars(stmt))
            more = limit is not None and len(rows) > limit
            jobs = [job_from_row(row) for row in (rows[:limit] if limit is not None else rows)]
        return JobPage(items=jobs, next_cursor=encode_cursor(jobs[-1].id) if more and jobs else None)

    # --- metrics ---

    def latest_outcome_counts(self) -> dict[tuple[str, str], int]:
        """(host class, outcome) → number of model versions whose latest decision it is."""
        d = DecisionRow
        newest = select(func.max(d.id)).group_by(d.sha256, d.host_class)
        stmt = (
            select(d.host_class, d.outcome, func.count())
            .where(d.id.in_(newest))
            .group_by(d.host_class, d.outcome)
        )
        with self.tx.read() as session:
            return {(cls, outcome): count for cls, outcome, count in session.execute(stmt)}


def _has_latest_decision(host_class: str | None, outcome: Outcome | None) -> Any:
    """EXISTS a decision for the path's content that is the newest of its class and matches."""
    d = aliased(DecisionRow)
    newer = aliased(DecisionRow)
    newest_of_class = (
        select(func.max(newer.id))
        .where(newer.sha256 == d.sha256, newer.host_class == d.host_class)
        .scalar_subquery()
    )
    cond = [d.sha256 == ModelPathRow.sha256, d.id == newest_of_class]
    if host_class is not None:
        cond.append(d.host_class == host_class)
    if outcome is not None:
        cond.append(d.outcome == Outcome(outcome).value)
    return select(d.id).where(*cond).exists()


def _model_cursor(row: Any, sort: str) -> str:
    if sort.lstrip("-") == "path":
        return encode_cursor(row.path)
    seen = as_utc(row.last_seen_at)
    assert seen is not None
    return encode_cursor(seen.isoformat(), row.id)


def _parse_time(value: Any) -> datetime:
    try:
        parsed = as_utc(datetime.fromisoformat(str(value)))
    except ValueError:
        raise UsageError(f"invalid cursor time {value!r}") from None
    assert parsed is not None
    return parsed


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError("invalid cursor: pass back a next_cursor value unchanged")
    return value
