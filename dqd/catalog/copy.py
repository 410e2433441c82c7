"""Moving a catalog: every row of every table, ids and history kept, SQLite and Postgres either way.

The destination is brought to the code's schema first and must be empty
(``replace`` empties it); the source must be at the same revision and have no
daemon heartbeating on it, so nothing is written while it is read. Rows go
table by table in foreign-key order through the ORM's tables, so the column
types (JSON, escaped names) convert between dialects as they do in use. Postgres
sequences are moved past the copied ids; every table's row count is compared
at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, Table, func, select, text

from dqd.catalog.db import database_now, is_sqlite
from dqd.catalog.migrate import current_revision, head_revision, upgrade
from dqd.catalog.store import Catalog
from dqd.catalog.tables import Base, HostRow
from dqd.errors import CatalogError

BATCH_ROWS = 2000


@dataclass(frozen=True)
class TableCopy:
    table: str
    source_rows: int
    destination_rows: int

    @property
    def complete(self) -> bool:
        return self.source_rows == self.destination_rows


def copy_catalog(
    source: Catalog,
    destination: Catalog,
    *,
    live_seconds: float,
    replace: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> list[TableCopy]:
    """Copy ``source`` into ``destination``; the per-table row counts, checked.

    Raises :class:`CatalogError` naming what to do when the source is behind the
    code, a host heartbeat on it within ``live_seconds``, or the destination holds
    rows and ``replace`` is not set.
    """
    head = head_revision()
    at = current_revision(source.engine)
    if at != head:
        raise CatalogError(
            f"the source catalog is at {at or 'nothing'}, this dqd at {head}: "
            "run `dqd db upgrade` on it first"
        )
    live = _live_hosts(source, live_seconds)
    if live:
        raise CatalogError(
            f"daemons are running on the source catalog ({', '.join(live)} heartbeat within "
            f"{live_seconds:.0f} s): stop them first, so nothing changes while it is copied"
        )
    upgrade(destination.engine)
    tables = list(Base.metadata.sorted_tables)
    if not replace:
        filled = [t.name for t in tables if _count(destination.engine, t)]
        if filled:
            raise CatalogError(
                f"the destination catalog is not empty ({', '.join(filled)}): "
                "copy into an empty one, or pass --replace to delete its rows first"
            )
    with destination.tx.write() as session:
        for table in reversed(tables):
            session.execute(table.delete())
        for table in tables:
            copied = 0
            with source.tx.read() as reading:
                rows = reading.execute(select(table).order_by(*table.primary_key.columns))
                while batch := rows.mappings().fetchmany(BATCH_ROWS):
                    session.execute(table.insert(), [dict(row) for row in batch])
                    copied += len(batch)
            if progress is not None:
                progress(table.name, copied)
    _reset_sequences(destination.engine, tables)
    return [TableCopy(t.name, _count(source.engine, t), _count(destination.engine, t)) for t in tables]


def _live_hosts(catalog: Catalog, live_seconds: float) -> list[str]:
    with catalog.tx.read() as session:
        cutoff = database_now(session) - timedelta(seconds=live_seconds)
        stmt = select(HostRow.hostname, HostRow.id).where(HostRow.last_heartbeat_at >= cutoff)
        rows = session.execute(stmt)
        return sorted(f"{hostname} ({host_id})" for hostname, host_id in rows)


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def _reset_sequences(engine: Engine, tables: list[Table]) -> None:
    """Postgres hands out ids from sequences the copy did not advance: move them past the copied ids."""
    if is_sqlite(engine):
        return  # SQLite's next rowid is the largest one plus one
    with engine.begin() as conn:
        for table in tables:
            keys = list(table.primary_key.columns)
            if len(keys) != 1 or keys[0].autoincrement is not True:
                continue
            name, column = table.name, keys[0].name
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', '{column}'), "
                    f"COALESCE((SELECT MAX({column}) FROM {name}), 0) + 1, false)"
                )
            )
