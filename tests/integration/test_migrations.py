"""Migrations from empty to head on SQLite and Postgres, and the result matches the ORM."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
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

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SHA_A, SHA_B = "a" * 64, "b" * 64
HOST = "h" * 32


def _rows_0001() -> dict[str, list[dict[str, Any]]]:
    """A small but realistic catalog as 0001 stored it: two versions of one path, jobs, variants,
    and decisions with their benchmark and accuracy rows (one decision benchmarked at two
    thread counts, one never benchmarked)."""
    at = lambda minutes: T0 + timedelta(minutes=minutes)  # noqa: E731
    variant = {
        "per_channel": False,
        "reduce_range": False,
        "op_types": [],
        "nodes_to_exclude": [],
        "extra_options": {},
        "preprocess": "quant_pre_process",
        "ort_version": "1.20.1",
        "created_at": at(5),
    }
    bench = {
        "host_id": HOST,
        "host_class": "x86_64-avx2",
        "ort_version": "1.20.1",
        "rounds": 50,
        "created_at": at(6),
    }
    return {
        "hosts": [
            {
                "id": HOST,
                "hostname": "build-1",
                "host_class": "x86_64-avx2",
                "arch": "x86_64",
                "cpu_model": "Intel Xeon",
                "isa_flags": ["avx2", "fma"],
                "usable_cores": 8,
                "os": "Linux 6.1",
                "ort_version": "1.20.1",
                "onnx_version": "1.17.0",
                "dqd_version": "0.1.0",
                "first_seen_at": at(0),
                "last_heartbeat_at": at(30),
            }
        ],
        "model_versions": [
            {
                "sha256": SHA_A,
                "size_bytes": 1234,
                "first_seen_at": at(1),
                "summary": {"op_histogram": {"MatMul": 3}},
            },
            {"sha256": SHA_B, "size_bytes": 5678, "first_seen_at": at(20), "summary": None},
        ],
        "model_paths": [
            {
                "id": 1,
                "path": "team/mlp.onnx",
                "sha256": SHA_B,
                "size_bytes": 5678,
                "mtime_ns": 1_700_000_000_000_000_000,
                "first_seen_at": at(1),
                "last_seen_at": at(20),
                "removed_at": None,
                "refused_reason": None,
            },
            {
                "id": 2,
                "path": "old/copy.onnx",
                "sha256": SHA_A,
                "size_bytes": 1234,
                "mtime_ns": 1_600_000_000_000_000_000,
                "first_seen_at": at(2),
                "last_seen_at": at(3),
                "removed_at": at(25),
                "refused_reason": None,
            },
        ],
        "path_versions": [
            {"id": 1, "path_id": 1, "sha256": SHA_A, "seen_at": at(1)},
            {"id": 2, "path_id": 1, "sha256": SHA_B, "seen_at": at(20)},
            {"id": 3, "path_id": 2, "sha256": SHA_A, "seen_at": at(2)},
        ],
        "jobs": [
            {
                "id": 1,
                "kind": "process",
                "sha256": SHA_A,
                "host_class": "x86_64-avx2",
                "state": "done",
                "attempts": 1,
                "max_attempts": 3,
                "priority": 0,
                "idempotency_key": f"process:{SHA_A}:x86_64-avx2",
                "source_path": "team/mlp.onnx",
                "last_error": None,
                "lease_owner": None,
                "lease_expires_at": None,
                "not_before": None,
                "created_at": at(1),
                "updated_at": at(10),
                "started_at": at(2),
                "finished_at": at(10),
            },
            {
                "id": 2,
                "kind": "process",
                "sha256": SHA_B,
                "host_class": "x86_64-avx2",
                "state": "queued",
                "attempts": 0,
                "max_attempts": 3,
                "priority": 5,
                "idempotency_key": f"process:{SHA_B}:x86_64-avx2",
                "source_path": "team/mlp.onnx",
                "last_error": None,
                "lease_owner": None,
                "lease_expires_at": None,
                "not_before": None,
                "created_at": at(20),
                "updated_at": at(20),
                "started_at": None,
                "finished_at": None,
            },
        ],
        "variants": [
            {
                **variant,
                "id": 1,
                "source_sha256": SHA_A,
                "spec_key": "k-fp32",
                "name": "fp32-opt",
                "weight_type": None,
                "output_path": "/out/team/mlp/aaaaaaaaaaaa/fp32-opt.onnx",
                "output_sha256": "c" * 64,
                "size_bytes": 1200,
                "quantize_seconds": 0.4,
                "error": None,
            },
            {
                **variant,
                "id": 2,
                "source_sha256": SHA_A,
                "spec_key": "k-u8u8",
                "name": "u8u8",
                "weight_type": "U8U8",
                "op_types": ["MatMul"],
                "extra_options": {"EnableSubgraph": True},
                "output_path": "/out/team/mlp/aaaaaaaaaaaa/u8u8.onnx",
                "output_sha256": "d" * 64,
                "size_bytes": 400,
                "quantize_seconds": 1.5,
                "error": None,
            },
        ],
        "decisions": [
            {
                "id": 1,
                "sha256": SHA_A,
                "host_class": "x86_64-avx2",
                "host_id": HOST,
                "job_id": 1,
                "ort_version": "1.20.1",
                "search_mode": "design",
                "policy_version": "design/1",
                "outcome": "quantized",
                "variant_id": 2,
                "speedup": 1.8,
                "speedup_ci_low": 1.7,
                "speedup_ci_high": 1.9,
                "reasons": ["selected u8u8"],
                "details": {"path": "team/mlp.onnx", "decision": {"selected": "u8u8"}},
                "error": None,
                "seconds": 9.5,
                "created_at": at(10),
            },
            {
                "id": 2,
                "sha256": SHA_A,
                "host_class": "aarch64-neon",
                "host_id": None,
                "job_id": None,
                "ort_version": "1.19.0",
                "search_mode": "ladder",
                "policy_version": "ladder/1",
                "outcome": "kept_fp32",
                "variant_id": None,
                "speedup": None,
                "speedup_ci_low": None,
                "speedup_ci_high": None,
                "reasons": ["kept FP32"],
                "details": {},
                "error": None,
                "seconds": 30.0,
                "created_at": at(12),
            },
            {
                "id": 3,
                "sha256": SHA_B,
                "host_class": "x86_64-avx2",
                "host_id": HOST,
                "job_id": None,
                "ort_version": "1.20.1",
                "search_mode": "design",
                "policy_version": "design/1",
                "outcome": "error",
                "variant_id": None,
                "speedup": None,
                "speedup_ci_low": None,
                "speedup_ci_high": None,
                "reasons": ["not a readable ONNX model"],
                "details": {},
                "error": "DecodeError: truncated",
                "seconds": 0.1,
                "created_at": at(21),
            },
        ],
        "accuracy_evaluations": [
            {
                "id": 1,
                "decision_id": 1,
                "variant_id": 2,
                "input_source": "synthetic",
                "metrics": {"cosine_mean": 0.998},
                "passed": True,
                "decisive": True,
                "reason": "cosine mean 1.00 >= 0.99",
                "created_at": at(8),
            },
            {
                "id": 2,
                "decision_id": None,  # an evaluation whose decision was never written
                "variant_id": 1,
                "input_source": "samples",
                "metrics": {"cosine_mean": 1.0},
                "passed": True,
                "decisive": False,
                "reason": "identical",
                "created_at": at(7),
            },
        ],
        "benchmark_runs": [
            {
                **bench,
                "id": 1,
                "decision_id": 1,
                "sha256": SHA_A,
                "variant_id": None,
                "step": "fp32",
                "threads": 4,
                "median_ms": 2.0,
                "p90_ms": 2.2,
                "p99_ms": 2.5,
                "speedup": None,
                "speedup_ci_low": None,
                "speedup_ci_high": None,
                "peak_rss_bytes": 10_000_000,
                "samples_ms": [2.0, 2.1, 1.9],
            },
            {
                **bench,
                "id": 2,
                "decision_id": 1,
                "sha256": SHA_A,
                "variant_id": 2,
                "step": "u8u8",
                "threads": 4,
                "median_ms": 1.1,
                "p90_ms": 1.2,
                "p99_ms": 1.4,
                "speedup": 1.8,
                "speedup_ci_low": 1.7,
                "speedup_ci_high": 1.9,
                "peak_rss_bytes": None,
                "samples_ms": [1.1, 1.0],
            },
            # Decision 2 was benchmarked at two thread counts: 0002 back-fills the larger.
            {
                **bench,
                "id": 3,
                "decision_id": 2,
                "sha256": SHA_A,
                "variant_id": None,
                "step": "fp32",
                "threads": 2,
                "host_id": None,
                "host_class": "aarch64-neon",
                "median_ms": 5.0,
                "p90_ms": 5.5,
                "p99_ms": 6.0,
                "speedup": None,
                "speedup_ci_low": None,
                "speedup_ci_high": None,
                "peak_rss_bytes": None,
                "samples_ms": [],
            },
            {
                **bench,
                "id": 4,
                "decision_id": 2,
                "sha256": SHA_A,
                "variant_id": 1,
                "step": "fp32-opt",
                "threads": 8,
                "host_id": None,
                "host_class": "aarch64-neon",
                "median_ms": 4.9,
                "p90_ms": 5.4,
                "p99_ms": 5.9,
                "speedup": 1.02,
                "speedup_ci_low": 0.98,
                "speedup_ci_high": 1.06,
                "peak_rss_bytes": None,
                "samples_ms": [4.9],
            },
            # A run whose decision was never written: no decision to back-fill.
            {
                **bench,
                "id": 5,
                "decision_id": None,
                "sha256": SHA_B,
                "variant_id": None,
                "step": "fp32",
                "threads": 16,
                "median_ms": 3.0,
                "p90_ms": 3.1,
                "p99_ms": 3.2,
                "speedup": None,
                "speedup_ci_low": None,
                "speedup_ci_high": None,
                "peak_rss_bytes": None,
                "samples_ms": [3.0],
            },
        ],
    }


def _read(engine: Engine, names: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return {
            name: [dict(row._mapping) for row in conn.execute(select(meta.tables[name]).order_by(text("1")))]
            for name in names
        }


def test_a_filled_0001_catalog_upgrades_to_head_with_every_row_intact(empty_url: str) -> None:
    rows = _rows_0001()
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

        assert upgrade(catalog.engine) == head_revision()

        after = _read(catalog.engine, [*rows, "removal_blocks"])
        if "path" in after["decisions"][0]:  # 0003: the path moves out of details into its column
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
