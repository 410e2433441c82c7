"""Issue 10, "one rule for exclude": an excluded model looks the same in `dqd models` whether the
daemon found it (scan or watcher) or `dqd process` was given it: `skipped`, with the reason."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dqd.catalog import Catalog
from tests.acceptance.harness import DQD, Daemon, one_shot_env, wait_for
from tests.acceptance.tiny import write_model

pytestmark = pytest.mark.slow

EXCLUDED = "excluded by per-model settings (exclude = true)"


def tree(workdir: Path) -> Path:
    """A model excluded by a configuration glob, one by its sidecar, one decided normally."""
    models = workdir / "models"
    write_model(models / "skip" / "globbed.onnx", seed=21)
    write_model(models / "own.onnx", seed=22)
    (models / "own.dqd.toml").write_text("exclude = true\n")
    write_model(models / "kept.onnx", seed=23)
    config = workdir / "dqd.toml"
    config.write_text('[models."skip/*"]\nexclude = true\n')
    return config


def listed(workdir: Path, config: Path) -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [*DQD, "models", "--json"],
        cwd=workdir,
        env=one_shot_env(workdir, DQD_CONFIG=str(config)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {row["path"]: row for row in json.loads(done.stdout)}


def seen_by_user(rows: dict[str, dict[str, Any]]) -> dict[str, list[tuple[Any, Any]]]:
    return {
        path: [(d["outcome"], d["reason"]) for d in row["decisions"]]
        for path, row in rows.items()
        if path != "kept.onnx"
    }


def test_an_excluded_model_is_listed_alike_by_the_daemon_and_by_dqd_process(tmp_path: Path) -> None:
    by_daemon, by_process = tmp_path / "daemon", tmp_path / "process"
    config = tree(by_daemon)
    daemon = Daemon(by_daemon, f"sqlite:///{by_daemon / 'dqd.db'}", DQD_CONFIG=str(config)).start()
    try:
        catalog = Catalog.from_url(daemon.database_url)
        try:
            wait_for("three decisions", lambda: len(catalog.recent_decisions(10)) == 3, 120)
        finally:
            catalog.close()
    finally:
        assert daemon.stop() == 0, daemon.log_text()
    config = tree(by_process)
    subprocess.run(
        [*DQD, "process", "models"],
        cwd=by_process,
        env=one_shot_env(by_process, DQD_CONFIG=str(config)),
        capture_output=True,
        timeout=180,
        check=True,
    )

    daemon_rows, process_rows = listed(by_daemon, by_daemon / "dqd.toml"), listed(by_process, config)
    assert sorted(daemon_rows) == sorted(process_rows) == ["kept.onnx", "own.onnx", "skip/globbed.onnx"]
    assert seen_by_user(daemon_rows) == seen_by_user(process_rows)
    assert seen_by_user(daemon_rows) == {
        "own.onnx": [("skipped", EXCLUDED)],
        "skip/globbed.onnx": [("skipped", EXCLUDED)],
    }
