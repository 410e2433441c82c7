"""Issue 9, scenario 5: read commands never create a catalog or its folder (real subprocesses)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.catalog.migrate import head_revision, upgrade
from tests.acceptance.harness import DQD

READ_COMMANDS = [
    ("models",),
    ("show", "model.onnx"),
    ("best", "model.onnx"),
    ("jobs",),
    ("jobs", "list"),
    ("status",),
    ("hosts",),
    ("serve", "--port", "0"),
    ("report", "--out", "report"),
    # Not reads, but meaningless without a catalog: they must not create one either.
    ("db", "current"),
    ("doctor",),
    ("jobs", "retry", "1"),
    ("jobs", "cancel", "1"),
]


def dqd(*args: str, cwd: Path, url: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")} | {"DQD_DATABASE_URL": url}
    return subprocess.run(
        [*DQD, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda a: " ".join(a))
def test_a_read_command_on_a_missing_sqlite_file_exits_3_and_creates_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    missing = tmp_path / "nonexistent" / "dir" / "dqd.db"
    try:
        ran = dqd(*args, cwd=tmp_path, url=f"sqlite:///{missing}", timeout=30)
    except subprocess.TimeoutExpired:  # `dqd serve` went on to serve an empty catalog
        pytest.fail(f"dqd {' '.join(args)} did not refuse the missing catalog")
    assert ran.returncode == 3, (ran.stdout, ran.stderr)
    assert str(missing) in ran.stderr and "(none)" not in ran.stdout
    assert "no catalog at" in ran.stderr
    assert not (tmp_path / "nonexistent").exists(), "the catalog's folder was created"
    assert not (tmp_path / "report").exists()


def test_writers_still_create_and_an_old_catalog_is_still_migrated_on_open(tmp_path: Path) -> None:
    created = tmp_path / "new" / "dqd.db"
    upgraded = dqd("db", "upgrade", cwd=tmp_path, url=f"sqlite:///{created}")
    assert upgraded.returncode == 0 and created.is_file(), upgraded.stderr

    old = tmp_path / "old.db"
    catalog = Catalog.from_url(f"sqlite:///{old}")
    upgrade(catalog.engine, "0001_initial")
    catalog.close()
    listed = dqd("models", cwd=tmp_path, url=f"sqlite:///{old}")
    assert listed.returncode == 0 and listed.stdout == "(none)\n", listed.stderr
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
