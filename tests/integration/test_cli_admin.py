"""The installed `dqd` command: version, db, config, doctor and exit codes (real subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DQD = [sys.executable, "-c", "from dqd.cli import main; main()"]


def run_dqd(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DQD_") or k == "DQD_TEST_POSTGRES_URL"}
    clean.update(env or {})
    return subprocess.run(
        [*DQD, *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=120, check=False
    )


def test_version(tmp_path: Path) -> None:
    from dqd import __version__

    result = run_dqd("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"dqd {__version__}"


def test_db_upgrade_creates_default_sqlite_catalog(tmp_path: Path) -> None:
    from dqd.catalog.migrate import head_revision

    result = run_dqd("db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dqd.db").is_file()
    current = run_dqd("db", "current", "--json", cwd=tmp_path)
    assert json.loads(current.stdout) == {
        "current": head_revision(),
        "head": head_revision(),
        "up_to_date": True,
    }


@pytest.mark.postgres
def test_db_upgrade_on_postgres(empty_postgres_url: str, tmp_path: Path) -> None:
    env = {"DQD_DATABASE_URL": empty_postgres_url}
    assert run_dqd("db", "current", "--json", cwd=tmp_path, env=env).stdout.count('"up_to_date": false') == 1
    result = run_dqd("db", "upgrade", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(run_dqd("db", "current", "--json", cwd=tmp_path, env=env).stdout)["up_to_date"]
    assert not (tmp_path / "dqd.db").exists()


def test_config_show_json_redacts_secrets(tmp_path: Path) -> None:
    env = {"DQD_DATABASE_URL": "postgresql+psycopg://dqd:hunter2@db/dqd", "DQD_API__TOKEN": "tok-123"}
    result = run_dqd("config", "show", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["database_url"] == "postgresql+psycopg://dqd:***@db/dqd"
    assert data["search"] == "design"
    assert data["watch_dir"] == "models"
    assert "hunter2" not in result.stdout + result.stderr
    assert "tok-123" not in result.stdout + result.stderr


def test_bad_configuration_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "dqd.toml"
    config.write_text('search = "fastest"\n')
    result = run_dqd("--config", str(config), "config", "show", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        "search" in result.stderr
        and "'fastest'" in result.stderr
        and "'design' or 'thorough'" in result.stderr
    )
    assert result.stderr.count("\n") == 1  # one clear line, no traceback


def test_unknown_command_is_usage_error(tmp_path: Path) -> None:
    assert run_dqd("frobnicate", cwd=tmp_path).returncode == 2


def test_doctor_reports_host_and_catalog(tmp_path: Path) -> None:
    from dqd.hostinfo import detect_host

    run_dqd("db", "upgrade", cwd=tmp_path)
    result = run_dqd("doctor", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["host_class"] == detect_host().host_class
    assert data["catalog"]["schema_current"] is True
    assert data["problems"] == []
    assert data["host_declared"] is False


def test_a_declared_host_class_is_shown_as_declared_and_refused_without_the_flag(tmp_path: Path) -> None:
    declared = {"DQD_HOST_CLASS": "x86_64-amx"}
    refused = run_dqd("doctor", cwd=tmp_path, env=declared)
    assert refused.returncode == 2 and "allow_host_override" in refused.stderr
    shown = run_dqd("doctor", "--json", cwd=tmp_path, env={**declared, "DQD_ALLOW_HOST_OVERRIDE": "true"})
    data = json.loads(shown.stdout)
    assert (data["host_class"], data["host_declared"]) == ("x86_64-amx", True)


def test_unreachable_catalog_exits_3(tmp_path: Path) -> None:
    env = {"DQD_DATABASE_URL": "postgresql+psycopg://dqd:s3cretpw@127.0.0.1:1/dqd"}
    doctor = run_dqd("doctor", "--json", cwd=tmp_path, env=env)
    assert doctor.returncode == 3
    assert json.loads(doctor.stdout)["catalog"]["reachable"] is False
    upgrade = run_dqd("db", "upgrade", cwd=tmp_path, env=env)
    assert upgrade.returncode == 3
    assert "unavailable" in upgrade.stderr and "s3cretpw" not in upgrade.stderr
