"""A fresh, migrated database on a Postgres server for one benchmark run, and its removal."""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dqd.catalog import Catalog
from dqd.catalog.migrate import upgrade


def _admin(server_url: str, statement: str) -> None:
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def fresh_postgres(server_url: str, prefix: str = "dqd_perf") -> str:
    """The URL of a new database on ``server_url``, migrated (a team runs `dqd db upgrade` first)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    _admin(server_url, f'CREATE DATABASE "{name}"')
    fresh = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    catalog = Catalog.from_url(fresh)
    upgrade(catalog.engine)
    catalog.close()
    return fresh


def drop_postgres(server_url: str, database_url: str) -> None:
    _admin(server_url, f'DROP DATABASE IF EXISTS "{make_url(database_url).database}" WITH (FORCE)')
