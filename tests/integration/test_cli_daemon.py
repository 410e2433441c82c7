"""`dqd enqueue`, `status`, `jobs retry|cancel`, `requantize`, and `run` start-up errors, as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.acceptance.tiny import write_model

DQD = [sys.executable, "-c", "from dqd.cli import main; main()"]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    write_model(tmp_path / "models" / "repo" / "m" / "1" / "model.onnx", seed=1)
    return tmp_path


def dqd(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")}
    return subprocess.run(
        [*DQD, *args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=120, check=False
    )


def test_enqueue_status_cancel_retry_requantize(workdir: Path) -> None:
    first = dqd("enqueue", "models/repo/m/1/model.onnx", cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert "repo/m/1/model.onnx: queued for" in first.stdout
    again = dqd("enqueue", "repo/m/1/model.onnx", cwd=workdir)  # relative to the watched folder works too
    assert again.returncode == 0 and "already queued" in again.stdout

    status = dqd("status", "--json", cwd=workdir)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["queue"]["queued"] == 1 and data["running"] == [] and data["last_decisions"] == []

    assert dqd("jobs", "cancel", "1", cwd=workdir).stdout.strip() == "job 1: cancelled"
    assert dqd("jobs", "retry", "1", cwd=workdir).stdout.strip() == "job 1: queued"
    missing = dqd("jobs", "retry", "99", cwd=workdir)
    assert missing.returncode == 1 and "no job 99" in missing.stderr

    busy = dqd("requantize", "models/repo/m/1/model.onnx", cwd=workdir)
    assert busy.returncode == 0 and "nothing queued" in busy.stdout  # a job for it is still queued
    dqd("jobs", "cancel", "1", cwd=workdir)
    redo = dqd("requantize", "models/repo/m/1/model.onnx", cwd=workdir)
    assert redo.returncode == 0 and "queued job 2: repo/m/1/model.onnx" in redo.stdout
    assert json.loads(dqd("status", "--json", cwd=workdir).stdout)["queue"]["queued"] == 1


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("enqueue", "/etc/hostname"), 2, "not inside the watched folder"),
        (("enqueue", "models/missing.onnx"), 1, "cannot read"),
        (("requantize",), 2, "exactly one"),
        (("requantize", "--all", "--stale"), 2, "exactly one"),
        (("requantize", "models/unknown.onnx"), 2, "not in the catalog"),
    ],
)
def test_usage_errors(workdir: Path, args: tuple[str, ...], code: int, words: str) -> None:
    result = dqd(*args, cwd=workdir)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert words in result.stdout + result.stderr


def test_unreachable_catalog_exits_3_without_the_password(workdir: Path) -> None:
    result = dqd("status", cwd=workdir, DQD_DATABASE_URL="postgresql+psycopg://dqd:s3cret@127.0.0.1:9/dqd")
    assert result.returncode == 3, result.stderr
    assert "s3cret" not in result.stdout + result.stderr


def test_run_refuses_a_bad_cron(workdir: Path) -> None:
    result = dqd("run", cwd=workdir, DQD_SCHEDULE__CRON="61 * * * *")
    assert result.returncode == 2, result.stderr
    assert "schedule.cron" in result.stderr


def test_run_refuses_a_catalog_newer_than_the_code(workdir: Path) -> None:
    import sqlite3

    assert dqd("db", "upgrade", cwd=workdir).returncode == 0
    with sqlite3.connect(workdir / "dqd.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    result = dqd("run", cwd=workdir)
    assert result.returncode == 3, result.stderr
    assert "newer than this dqd" in result.stderr
