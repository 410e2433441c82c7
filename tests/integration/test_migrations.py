"""Migrations from empty to head on SQLite and Postgres, and the result matches the ORM."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, inspect, select, text

from dqd.catalog import Catalog, open_catalog
from dqd.catalog.db import Transactions
from dqd.catalog.migrate import current_revision, ensure_current, head_revision, upgrade
from dqd.catalog.tables import Base, DecisionRow
from dqd.errors import SchemaMismatch
from dqd.settings import load
from tests.integration.catalog_0001 import rows_0001


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


# --- a filled catalog at 0001, upgraded through every later migration ---------------------------


def _read(engine: Engine, names: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return {
            name: [dict(row._mapping) for row in conn.execute(select(meta.tables[name]).order_by(text("1")))]
            for name in names
        }


def test_a_filled_0001_catalog_upgrades_to_head_with_every_row_intact(empty_url: str) -> None:
    rows = rows_0001()
    catalog = Catalog.from_url(empty_url)
    try:
        assert upgrade(catalog.engine, "0001_initial") == "0001_initial"
        meta = MetaData()
        meta.reflect(catalog.engine)
        with catalog.engine.begin() as conn:
            for name, values in rows.items():  # in foreign-key order
                conn.execute(meta.tables[name].insert(), values)
            if catalog.engine.dialect.name == "postgresql":  # explicit ids: move the sequences past them
                for name in rows:
                    if "id" in meta.tables[name].c and name != "hosts":
                        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), 100)"))
        before = _read(catalog.engine, rows)
        assert {name: len(found) for name, found in before.items()} == {n: len(v) for n, v in rows.items()}

        assert upgrade(catalog.engine) == head_revision()

        after = _read(catalog.engine, [*rows, "removal_blocks"])
        # 0003: the path moves out of details into its column.
        assert [row["path"] for row in after["decisions"]] == ["team/mlp.onnx", None, None]
        before["decisions"][0]["details"] = {"decision": {"selected": "u8u8"}}
        for name, old in before.items():
            kept = [{key: row[key] for key in old[0]} for row in after[name]]
            assert kept == old, f"{name}: rows changed by the migrations"
        # 0002's back-fill: each decision's threads is the most its benchmarks used; none without.
        assert {row["id"]: row["threads"] for row in after["decisions"]} == {1: 4, 2: 8, 3: None}
        assert all(row["stage"] is None and row["stage_started_at"] is None for row in after["jobs"])
        assert all(row["superseded_at"] is None for row in after["path_versions"])
        assert after["removal_blocks"] == []
    finally:
        catalog.close()
    # dqd's own mapping reads the migrated rows.
    catalog = Catalog.from_url(empty_url)
    try:
        with Transactions(catalog.engine).read() as session:
            decisions = session.scalars(select(DecisionRow).order_by(DecisionRow.id)).all()
            assert [(d.outcome, d.threads, d.variant_id) for d in decisions] == [
                ("quantized", 4, 2),
                ("kept_fp32", 8, None),
                ("error", None, None),
            ]
            assert decisions[0].details["decision"] == {"selected": "u8u8"}
    finally:
        catalog.close()


def test_0006_doubles_the_backslashes_of_names_written_before_so_they_read_back_unchanged(
    empty_url: str,
) -> None:
    """Names written before 0006 are stored as they are; from 0006 a backslash is stored doubled
    (dqd.pathtext.to_text), so a name holding one would read back changed without the migration."""
    name = "share\\xe9\\m.onnx"  # a backslash then "xe9": read as the byte 0xe9 unless doubled
    catalog = Catalog.from_url(empty_url)
    try:
        upgrade(catalog.engine, "0005_source_precision")
        rows = rows_0001()
        with catalog.engine.begin() as conn:
            meta = MetaData()
            meta.reflect(conn)
            conn.execute(meta.tables["model_versions"].insert(), rows["model_versions"])
            conn.execute(meta.tables["model_paths"].insert(), [{**rows["model_paths"][0], "path": name}])
        upgrade(catalog.engine)
        assert set(catalog.known_paths()) == {name}
        with catalog.engine.connect() as conn:
            stored = conn.execute(text("SELECT path FROM model_paths")).scalar_one()
        assert stored == name.replace("\\", "\\\\")
    finally:
        catalog.close()
