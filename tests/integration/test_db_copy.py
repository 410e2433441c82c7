"""Issue 14: `dqd db copy` moves a catalog SQLite -> Postgres -> SQLite with every row, id and history."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dqd.catalog import Catalog
from dqd.catalog.migrate import upgrade
from dqd.catalog.tables import Base
from dqd.domain import Outcome
from tests.acceptance.harness import DQD
from tests.query_factory import add_model, host, sha_of

pytestmark = pytest.mark.postgres
LONG_AGO = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # no daemon heartbeats on these catalogs


def _dqd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")}
    return subprocess.run([*DQD, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def _filled_sqlite(path: Path) -> str:
    url = f"sqlite:///{path}"
    catalog = Catalog.from_url(url)
    upgrade(catalog.engine)
    try:
        for index in range(5):
            add_model(catalog, f"zoo/m{index}.onnx", now=LONG_AGO, seed=index)
        add_model(catalog, "kept.onnx", outcome=Outcome.KEPT_FP32, now=LONG_AGO)
        catalog.observe_file("caf\udce9.onnx", sha_of("kept.onnx"), 4096, now=LONG_AGO)  # not UTF-8
        catalog.upsert_host(host("aarch64-dotprod", "arm-01"), now=LONG_AGO)
        catalog.observe_file("queued.onnx", sha_of("queued"), 1, now=LONG_AGO)
        catalog.enqueue(sha_of("queued"), "x86_64-avx2", source_path="queued.onnx", now=LONG_AGO)
    finally:
        catalog.close()
    return url


def _dump(url: str) -> dict[str, list[dict[str, Any]]]:
    catalog = Catalog.from_url(url)
    try:
        with catalog.engine.connect() as conn:
            return {
                table.name: [
                    {k: _plain(v) for k, v in row.items()}
                    for row in conn.execute(select(table).order_by(*table.primary_key.columns)).mappings()
                ]
                for table in Base.metadata.sorted_tables
            }
    finally:
        catalog.close()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):  # SQLite hands back naive UTC
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def test_a_catalog_goes_to_postgres_and_back_unchanged(tmp_path: Path, postgres_url: str) -> None:
    source = _filled_sqlite(tmp_path / "source.db")
    there = _dqd("db", "copy", source, postgres_url)
    assert there.returncode == 0, there.stderr
    assert "MISMATCH" not in there.stdout and "decisions: " in there.stdout
    back_url = f"sqlite:///{tmp_path / 'back.db'}"
    back = _dqd("db", "copy", postgres_url, back_url)
    assert back.returncode == 0, back.stderr
    original, returned, middle = _dump(source), _dump(back_url), _dump(postgres_url)
    assert sum(len(rows) for rows in original.values()) > 30
    assert middle == original and returned == original
    # Postgres hands out new ids after the copied ones, and the catalog works as usual.
    copied = Catalog.from_url(postgres_url)
    try:
        copied.observe_file("new.onnx", sha_of("new"), 1)
        job = copied.enqueue(sha_of("new"), "x86_64-avx2", source_path="new.onnx")
        assert job is not None and job.id > max(row["id"] for row in original["jobs"])
        assert "caf\udce9.onnx" in copied.known_paths()
    finally:
        copied.close()


def test_copy_refuses_a_filled_destination_a_password_on_the_command_line_and_a_live_source(
    tmp_path: Path, postgres_url: str
) -> None:
    missing = _dqd("db", "copy", f"sqlite:///{tmp_path / 'typo.db'}", postgres_url)
    assert missing.returncode == 3 and "check the source URL" in missing.stderr
    assert not (tmp_path / "typo.db").exists()
    source = _filled_sqlite(tmp_path / "source.db")
    assert _dqd("db", "copy", source, postgres_url).returncode == 0
    again = _dqd("db", "copy", source, postgres_url)
    assert again.returncode != 0 and "not empty" in again.stderr and "--replace" in again.stderr
    assert _dqd("db", "copy", source, postgres_url, "--replace").returncode == 0

    with_password = postgres_url.replace("postgres@", "postgres:hunter2@", 1)
    refused = _dqd("db", "copy", source, with_password)
    assert refused.returncode == 2 and "PGPASSWORD" in refused.stderr and "hunter2" not in refused.stderr

    live = Catalog.from_url(source)
    try:
        live.upsert_host(host("x86_64-avx2", "busy-01"))  # a heartbeat now
    finally:
        live.close()
    busy = _dqd("db", "copy", source, f"sqlite:///{tmp_path / 'other.db'}")
    assert busy.returncode != 0 and "busy-01" in busy.stderr and "stop them" in busy.stderr
