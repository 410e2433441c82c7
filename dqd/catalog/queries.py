"""Read-side queries for the CLI, the HTTP API and the report.

Lists are built in two steps so that a page costs the same at 10 or 10,000
models: first the page of paths (keyset on an indexed sort key), then the
latest decisions of just those contents through ``ix_decisions_latest``
(sha256, host_class, id), joined with their decisive accuracy rows. Wide JSON
columns (reasons, details) are only read where a person asked for one model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from dqd.catalog.db import Transactions, as_utc
from dqd.catalog.detail_queries import DetailQueries
from dqd.catalog.paths import live_classes
from dqd.catalog.report_queries import ReportQueries
from dqd.catalog.rows import job_from_row, latest_decision_from_columns, listing_from_columns
from dqd.catalog.tables import AccuracyRow, DecisionRow, JobRow, ModelPathRow, VariantRow
from dqd.catalog.views import (
    JobPage,
    LatestDecision,
    ModelPage,
    decode_cursor,
    encode_cursor,
)
from dqd.domain import JobState, Outcome, waiting_reason
from dqd.errors import UsageError

MODEL_SORTS: tuple[str, ...] = ("path", "-path", "seen", "-seen")
_IN_CHUNK = 500  # bound parameters per IN (...): far below SQLite's and Postgres' limits


def chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class QueryStore(DetailQueries, ReportQueries):
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
            # The whole catalog: one pass over the latest decisions beats thousands of IN parameters.
            shas = sorted({row[2] for row in rows if row[2]}) if limit is not None else None
            latest = self._latest_for(session, shas, host_class)
        # Plain tuples: named attribute access on 10,000 Rows costs more than the query itself.
        items = [listing_from_columns(row, latest.get(row[2] or "", [])) for row in rows]
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
        stmt = select(p.id, p.path, p.sha256, p.size_bytes, p.last_seen_at, p.removed_at, p.refused_reason)
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

    def latest_summary(self, sha256: str, host_class: str) -> LatestDecision | None:
        """The newest decision of one model version on one host class, with its headline accuracy."""
        with self.tx.read() as session:
            found = self._latest_for(session, [sha256], host_class).get(sha256, [])
        return found[0] if found else None

    def _latest_for(
        self, session: Session, shas: Sequence[str] | None, host_class: str | None
    ) -> dict[str, list[LatestDecision]]:
        """Newest decision per (content, host class) with its decisive accuracy; ``shas=None``: all.

        One query per chunk: the accuracy row is joined on (decision, selected
        variant), so only the metrics that are shown get decoded.
        """
        d, a = DecisionRow, AccuracyRow
        columns = (
            d.id, d.sha256, d.host_class, d.ort_version, d.outcome, d.variant_id, d.speedup,
            d.speedup_ci_low, d.speedup_ci_high, d.created_at, VariantRow.name,
            a.input_source, a.metrics, a.passed, a.reason, d.threads,
            d.reasons[0].as_string(),  # only the first reason: the list's short column, not the JSON
            d.source_precision,
        )  # fmt: skip
        found: dict[int, Any] = {}
        for part in chunks(shas) if shas is not None else [None]:
            newest = select(func.max(d.id))
            if part is not None:
                newest = newest.where(d.sha256.in_(part))
            if host_class is not None:
                newest = newest.where(d.host_class == host_class)
            stmt = (
                select(*columns)
                .outerjoin(VariantRow, VariantRow.id == d.variant_id)
                .outerjoin(a, and_(a.decision_id == d.id, a.variant_id == d.variant_id, a.decisive.is_(True)))
                .where(d.id.in_(newest.group_by(d.sha256, d.host_class)))
            )
            for row in session.execute(stmt):
                found.setdefault(row[0], row)  # one decisive evaluation per variant is expected
        result: dict[str, list[LatestDecision]] = {}
        for r in found.values():
            result.setdefault(r[1], []).append(latest_decision_from_columns(*r))
        for decisions in result.values():
            decisions.sort(key=lambda item: item.host_class)
        return result

    # --- jobs ---

    def jobs_page(
        self,
        *,
        states: Iterable[JobState] = (),
        host_class: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        offset: int = 0,
        live_within: float | None = None,
    ) -> JobPage:
        """Jobs, newest first; keyset on the id. ``live_within``: a host's heartbeat age (seconds) that
        counts as live; each queued job of a class without one says it is waiting for one."""
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
            if live_within is not None:
                live = set(live_classes(session, live_within))
                jobs = [replace(job, waiting=waiting_reason(job, live)) for job in jobs]
        return JobPage(items=jobs, next_cursor=encode_cursor(jobs[-1].id) if more and jobs else None)

    # --- metrics ---

    def latest_outcome_counts(self) -> dict[tuple[str, str], int]:
        """(host class, outcome) → number of live model versions whose latest decision it is.

        Live: held by a path that is not removed. Earlier versions of a path and deleted
        files keep their decisions in the catalog but are no longer anyone's model.
        """
        d = DecisionRow
        live = select(ModelPathRow.sha256).where(ModelPathRow.removed_at.is_(None))
        newest = select(func.max(d.id)).where(d.sha256.in_(live)).group_by(d.sha256, d.host_class)
        stmt = (
            select(d.host_class, d.outcome, func.count())
            .where(d.id.in_(newest))
            .group_by(d.host_class, d.outcome)
        )
        with self.tx.read() as session:
            return {(cls, outcome): count for cls, outcome, count in session.execute(stmt)}


def _has_latest_decision(host_class: str | None, outcome: Outcome | None) -> Any:
    """The path's content has a latest decision (for ``host_class``, or any class) with ``outcome``.

    With a host class: one probe of ``ix_decisions_latest`` (sha256, host_class,
    id) per path, walked in page order, so a page stops early. Without one,
    the candidates come from the outcome's index and each is checked to be
    the newest of its class. (A max() correlated from the decisions side made
    SQLite scan decisions per path: seconds at 10,000 models.)
    """
    d = aliased(DecisionRow)
    if host_class is not None:
        newest = (
            select(d.outcome)
            .where(d.sha256 == ModelPathRow.sha256, d.host_class == host_class)
            .order_by(d.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        return newest.is_not(None) if outcome is None else newest == Outcome(outcome).value
    newer = aliased(DecisionRow)
    newest_of_class = (
        select(func.max(newer.id))
        .where(newer.sha256 == d.sha256, newer.host_class == d.host_class)
        .scalar_subquery()
    )
    return ModelPathRow.sha256.in_(
        select(d.sha256).where(d.outcome == Outcome(outcome).value, d.id == newest_of_class)  # type: ignore[arg-type]
    )


def _model_cursor(row: tuple[Any, ...], sort: str) -> str:
    path_id, path, _, _, last_seen = row[:5]
    if sort.lstrip("-") == "path":
        return encode_cursor(path)
    seen = as_utc(last_seen)
    assert seen is not None
    return encode_cursor(seen.isoformat(), path_id)


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
