"""Engines and transactions: SQLite and Postgres tuned for a job queue.

SQLite: WAL, a busy timeout, foreign keys on; writes run inside
``BEGIN IMMEDIATE`` so the write lock is taken up front (no deadlocking
upgrade from a read lock), reads use plain deferred transactions. Driver
errors are wrapped once, here, into :class:`CatalogUnavailable`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from dqd.errors import CatalogError, CatalogUnavailable
from dqd.settings import redact_url
from dqd.text import first_line

SQLITE_BUSY_TIMEOUT_MS = 30_000


def utcnow() -> datetime:
    return datetime.now(UTC)


def database_now(session: Session) -> datetime:
    """The catalog's clock, for times that hosts compare (leases, heartbeats, backoffs).

    Several hosts share a Postgres catalog and their clocks drift: a host whose
    clock runs ahead would steal live leases, one behind would keep dead ones.
    Postgres's ``now()`` is one clock for all of them. A SQLite catalog is one
    host's file, so that host's clock is the catalog's.
    """
    if session.get_bind().dialect.name == "sqlite":
        return utcnow()
    value = session.scalar(select(func.now()))
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything dqd stores is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver in the ``postgres`` extra)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def url_has_password(url: str) -> bool:
    return make_url(normalize_url(url)).password is not None


def make_engine(url: str, *, create: bool = True, **kwargs: Any) -> Engine:
    """An engine for ``url``; ``create`` makes a SQLite file's folder (writers only)."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if create and database and database != ":memory:":
            from pathlib import Path

            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
        _tune_sqlite(engine)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)
    except ModuleNotFoundError as exc:
        raise CatalogError(
            f"no driver for {redact_url(url)}: install the Postgres extra: pip install 'dqd[postgres]' "
            f"({exc})"
        ) from exc


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event, not the driver, decide when transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get("dqd_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class Transactions:
    """Sessions for reads and writes; one in-process writer at a time on SQLite."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._write_lock = threading.Lock() if is_sqlite(engine) else None

    @contextmanager
    def read(self) -> Iterator[Session]:
        with (
            self._wrap_errors(),
            self.engine.connect() as conn,
            Session(bind=conn) as session,
            session.begin(),
        ):
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._wrap_errors():
            if self._write_lock is not None:
                with self._write_lock, self._write_session() as session:
                    yield session
            else:
                with self._write_session() as session:
                    yield session

    @contextmanager
    def _write_session(self) -> Iterator[Session]:
        with self.engine.connect() as conn:
            conn.execution_options(dqd_write=True)
            with Session(bind=conn, expire_on_commit=False) as session, session.begin():
                yield session

    @contextmanager
    def _wrap_errors(self) -> Iterator[None]:
        try:
            yield
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, OperationalError) or exc.connection_invalidated:
                raise CatalogUnavailable(
                    f"catalog {redact_url(str(self.engine.url.render_as_string(hide_password=True)))} "
                    f"unavailable: {first_line(exc.orig, limit=None) if exc.orig else exc}"
                ) from exc
            raise CatalogError(
                f"catalog error: {first_line(exc.orig, limit=None) if exc.orig else exc}"
            ) from exc
        except SQLAlchemyError as exc:
            raise CatalogError(f"catalog error: {exc}") from exc
