"""Hostile and broken files dropped in a real daemon's folder: each ends in a final state with
its reason, the daemon stays up, and no byte of what was dropped changes.

The cases and what each must become are in tests/hostile.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dqd.catalog import Catalog
from dqd.domain import DecisionRecord, Job, JobState, Outcome
from dqd.pathtext import for_display
from tests.acceptance.harness import SLOW_ENGINE, Daemon, free_port, wait_for
from tests.acceptance.tiny import write_model
from tests.hostile import DECIDED, ERROR, REFUSED, UNLISTED, Case, build_cases, endless_loop_bytes

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(
        tmp_path,
        f"sqlite:///{tmp_path / 'dqd.db'}",
        DQD_LIMITS__TIMEOUT_SECONDS="60",
        DQD_WORKER__MAX_ATTEMPTS="1",  # a transient failure is recorded at once, not retried
    )
    yield daemon
    daemon.kill()


def snapshot(root: Path) -> dict[str, bytes]:
    """Every regular file's bytes' sha256 (links not followed: the test compares what was dropped)."""
    found = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).digest()
    return found


def listed(daemon: Daemon) -> dict[str, dict[str, Any]]:
    shown = daemon.cli("models", "--json")
    assert shown.returncode == 0, shown.stderr
    return {model["path"]: model for model in json.loads(shown.stdout)}


def state(model: dict[str, Any] | None) -> tuple[str, str]:
    """(the final state, its reason), or ("pending", "") while neither decided nor refused."""
    if model is None:
        return UNLISTED, ""
    if model["refused_reason"]:
        return REFUSED, model["refused_reason"]
    if model["decisions"]:
        decision = model["decisions"][0]
        return (ERROR if decision["outcome"] == "error" else DECIDED), decision["reason"] or ""
    return "pending", ""


def test_every_hostile_file_ends_in_a_final_state_with_its_reason(daemon: Daemon, tmp_path: Path) -> None:
    cases = build_cases(daemon.watch, tmp_path / "outside")
    before = snapshot(daemon.watch)
    port = free_port()
    daemon.start(DQD_API__SERVE_IN_DAEMON="true", DQD_API__PORT=str(port))

    def settled() -> dict[str, dict[str, Any]] | None:
        models = listed(daemon)
        waiting = [c for c in cases if c.expect != UNLISTED and state(models.get(shown(c)))[0] == "pending"]
        missing = [c for c in cases if c.expect != UNLISTED and shown(c) not in models]
        return None if waiting or missing else models

    models = wait_for("every case to reach a final state", settled, 240, interval=1.0)

    wrong = []
    for case in cases:
        got, reason = state(models.get(shown(case)))
        if got != case.expect or case.reason.lower() not in reason.lower():
            wrong.append(f"{case.name}: expected {case.expect} ({case.reason!r}), got {got}: {reason}")
    assert not wrong, "\n".join(wrong)
    assert daemon.process is not None and daemon.process.poll() is None, "the daemon died"
    assert snapshot(daemon.watch) == before, "a dropped file changed"

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/models?limit=500", timeout=5) as response:
        served = {item["path"]: item for item in json.loads(response.read())["items"]}
    for case in cases:
        if case.expect == REFUSED:
            assert served[shown(case)]["refused_reason"], case.name
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log_text()


def shown(case: Case) -> str:
    return for_display(case.name)


def job_of(catalog: Catalog, path: str) -> Job | None:
    return next((job for job in catalog.list_jobs() if job.source_path == path), None)


def test_a_crashed_engine_and_files_deleted_or_replaced_while_queued(daemon: Daemon) -> None:
    """A model that makes onnxruntime crash (the test sends the engine child SIGSEGV mid-job) is
    recorded as a permanent error; a file deleted while queued is superseded, not an error; a
    file replaced while queued is decided in its new content only. The daemon stays up."""
    daemon.start(**{**SLOW_ENGINE, "DQD_BENCHMARK__MIN_SECONDS": "2", "DQD_BENCHMARK__MAX_SECONDS": "2"})
    write_model(daemon.watch / "crashes.onnx", seed=1)
    catalog = Catalog.from_url(daemon.database_url)
    try:
        wait_for("the engine to be at work", daemon.engine_children, 30)
        write_model(daemon.watch / "deleted.onnx", seed=2)
        write_model(daemon.watch / "replaced.onnx", seed=3)
        queued = wait_for(
            "both to be queued",
            lambda: all(job_of(catalog, p) for p in ("deleted.onnx", "replaced.onnx")),
            30,
        )
        assert queued
        first_sha = catalog.known_paths()["replaced.onnx"].sha256
        (daemon.watch / "deleted.onnx").unlink()
        write_model(daemon.watch / "replaced.onnx", seed=4)
        for child in daemon.engine_children():
            child.send_signal(signal.SIGSEGV)

        def settled() -> list[Job] | None:
            jobs = catalog.list_jobs()
            busy = [j for j in jobs if j.state in (JobState.QUEUED, JobState.RUNNING)]
            return None if busy or len(jobs) < 4 else jobs

        wait_for("every job to end", settled, 90)
        decisions = {d.sha256: d for d in catalog.recent_decisions(100)}
        paths = catalog.known_paths()
        crashed = decisions[paths["crashes.onnx"].sha256 or ""]
        assert crashed.outcome is Outcome.ERROR and "SIGSEGV" in (crashed.error or ""), crashed
        new_sha = paths["replaced.onnx"].sha256
        assert new_sha != first_sha and decisions[new_sha or ""].outcome is not Outcome.ERROR
        assert first_sha not in decisions, "the replaced content was decided"
        assert "deleted.onnx" not in paths
        gone = next(j for j in catalog.list_jobs() if j.source_path == "deleted.onnx")
        assert gone.state is JobState.CANCELLED and gone.sha256 not in decisions, gone
        assert daemon.process is not None and daemon.process.poll() is None
    finally:
        catalog.close()
    assert daemon.stop() == 0


def test_a_model_that_runs_forever_is_stopped_at_the_timeout_and_recorded(daemon: Daemon) -> None:
    daemon.start(DQD_LIMITS__TIMEOUT_SECONDS="3")
    (daemon.watch / "forever.onnx").write_bytes(endless_loop_bytes())
    write_model(daemon.watch / "after.onnx", seed=5)
    catalog = Catalog.from_url(daemon.database_url)
    try:

        def decided() -> dict[str, DecisionRecord] | None:
            decisions = {d.sha256: d for d in catalog.recent_decisions(10)}
            by_path = {
                p: decisions[m.sha256] for p, m in catalog.known_paths().items() if m.sha256 in decisions
            }
            return by_path if len(by_path) == 2 else None

        by_path = wait_for("both to be decided", decided, 60)
        assert by_path["forever.onnx"].outcome is Outcome.ERROR
        assert "timed out for forever.onnx after 3 s" in (by_path["forever.onnx"].error or "")
        assert by_path["after.onnx"].outcome is not Outcome.ERROR
        assert not daemon.engine_children(), "the hung child was left running"
    finally:
        catalog.close()
    assert daemon.stop() == 0
