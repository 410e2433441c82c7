"""Migrations from empty to head on SQLite and Postgres, and the result matches the ORM."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from dqd.catalog import Catalog, open_catalog
from dqd.catalog.migrate import current_revision, ensure_current, head_revision, upgrade
from dqd.catalog.tables import Base
from dqd.errors import SchemaMismatch
from dqd.settings import load


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("empty_postgres_url"))


def test_upgrade_from_empty_to_head_matches_orm(empty_url: str) -> None:
    catalog = Catalog.from_url(empty_url)
    try:
        assert current_revision(catalog.engine) is None
        assert upgrade(catalog.engine) == head_revision()
        tables = set(inspect(catalog.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with catalog.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == [], f"migrations and ORM disagree: {diff}"
        # Idempotent: upgrading again changes nothing.
        assert upgrade(catalog.engine) == head_revision()
    finally:
        catalog.close()


def test_refuses_catalog_newer_than_code(empty_url: str) -> None:
    catalog = Catalog.from_url(empty_url)
    try:
        upgrade(catalog.engine)
        with catalog.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        with pytest.raises(SchemaMismatch, match="newer than this dqd"):
            ensure_current(catalog.engine)
        with pytest.raises(SchemaMismatch, match="newer than this dqd"):
            upgrade(catalog.engine)
    finally:
        catalog.close()


def test_open_catalog_migrates_sqlite_but_not_postgres_by_default(empty_url: str) -> None:
    settings = load(overrides={"database_url": empty_url})
    if empty_url.startswith("sqlite"):
        open_catalog(settings).close()
        catalog = Catalog.from_url(empty_url)
        assert current_revision(catalog.engine) == head_revision()
        catalog.close()
    else:
        with pytest.raises(SchemaMismatch, match="dqd db upgrade"):
            open_catalog(settings)
        open_catalog(settings, migrate=True).close()


def test_sqlite_pragmas(tmp_path) -> None:  # type: ignore[no-untyped-def]
    catalog = Catalog.from_url(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with catalog.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    finally:
        catalog.close()


def test_the_cheap_revision_check_agrees_with_alembic(empty_url: str) -> None:
    from dqd.catalog.revision import declared_head, is_current, stored_revision

    assert declared_head() == head_revision()
    catalog = Catalog.from_url(empty_url)
    try:
        assert stored_revision(catalog.engine) is None and not is_current(catalog.engine)
        upgrade(catalog.engine, "0001_initial")
        assert stored_revision(catalog.engine) == "0001_initial" and not is_current(catalog.engine)
        upgrade(catalog.engine)
        assert is_current(catalog.engine)
    finally:
        catalog.close()


def test_0003_moves_the_decision_path_out_of_details(empty_url: str) -> None:
    """Decisions recorded before 0003 kept their path inside details; after it, in the column."""
    from dqd.catalog.tables import DecisionRow

    catalog = Catalog.from_url(empty_url)
    try:
        upgrade(catalog.engine, "0002_first_hour")
        now = "2026-12-01 00:00:00"
        with catalog.engine.begin() as conn:
            conn.execute(
                text("INSERT INTO model_versions (sha256, size_bytes, first_seen_at) VALUES ('ab', 1, :now)"),
                {"now": now},
            )
            for decision_id, details in ((1, '{"path": "a/m.onnx", "decision": {"x": 1}}'), (2, "{}")):
                conn.execute(
                    text(
                        "INSERT INTO decisions (id, sha256, host_class, ort_version, search_mode, "
                        "policy_version, outcome, reasons, details, created_at) VALUES "
                        "(:id, 'ab', 'c', '1', 'design', 'p', 'kept_fp32', '[]', :details, :now)"
                    ),
                    {"id": decision_id, "details": details, "now": now},
                )
        upgrade(catalog.engine)
        with catalog.tx.read() as session:
            rows = {r.id: (r.path, r.details) for r in session.query(DecisionRow).order_by(DecisionRow.id)}
        assert rows == {1: ("a/m.onnx", {"decision": {"x": 1}}), 2: (None, {})}
    finally:
        catalog.close()
