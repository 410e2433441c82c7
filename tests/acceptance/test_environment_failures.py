"""Issue 9, scenario 2: a failure of the environment is a command or job error, never a model's decision.

Real ``dqd process`` and ``dqd run`` subprocesses, a real SQLite catalog; the
broken environment is a host lock (or output folder) below a regular file,
which no user, root included, can create.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.domain import JobState
from tests.acceptance.harness import DQD, FAST_ENGINE, Daemon, decisions_per_sha, jobs_for, wait_for
from tests.acceptance.tiny import write_model

pytestmark = pytest.mark.slow


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    """A regular file: nothing can be created below it."""
    path = tmp_path / "not-a-folder"
    path.write_text("")
    return path


def dqd_process(
    workdir: Path, url: str, *args: str, lock_env: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")}
    settings = {"DQD_DATABASE_URL": url, "DQD_OUTPUT_DIR": str(workdir / "out"), **FAST_ENGINE, **env}
    if lock_env:
        settings.setdefault("DQD_HOST_LOCK", str(workdir / "host.lock"))
    return subprocess.run(
        [*DQD, "process", *args],
        cwd=workdir,
        env={**clean, **settings},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_process_with_an_impossible_host_lock_exits_3_and_keeps_the_decision(
    tmp_path: Path, url: str, catalog: Catalog, blocker: Path
) -> None:
    model = write_model(tmp_path / "m" / "tiny.onnx", seed=7)
    good = dqd_process(tmp_path, url, str(model))
    assert good.returncode == 0, good.stderr
    (before,) = catalog.recent_decisions(10)

    bad = dqd_process(tmp_path, url, str(model), DQD_HOST_LOCK=str(blocker / "host.lock"))
    assert bad.returncode == 3, bad.stderr
    assert "host_lock" in bad.stderr and str(blocker / "host.lock") in bad.stderr
    assert "Traceback" not in bad.stderr
    # Nothing recorded: the good decision is still the latest, and `dqd best` still answers.
    assert [d.id for d in catalog.recent_decisions(10)] == [before.id]
    assert catalog.latest_decision(before.sha256, before.host_class) == before

    # The settings key, from a file, is the same setting.
    config = tmp_path / "dqd.toml"
    config.write_text(f'host_lock = "{blocker / "host.lock"}"\n')
    keyed = dqd_process(tmp_path, url, str(model), lock_env=False, DQD_CONFIG=str(config))
    assert keyed.returncode == 3 and "host_lock" in keyed.stderr, keyed.stderr
    assert len(catalog.recent_decisions(10)) == 1


def test_process_with_an_unusable_output_dir_exits_3_recording_nothing(
    tmp_path: Path, url: str, catalog: Catalog, blocker: Path
) -> None:
    model = write_model(tmp_path / "m" / "tiny.onnx", seed=8)
    bad = dqd_process(tmp_path, url, str(model), DQD_OUTPUT_DIR=str(blocker / "out"))
    assert bad.returncode == 3, bad.stderr
    assert "output_dir" in bad.stderr
    assert catalog.recent_decisions(10) == []


def test_daemon_with_a_bad_host_lock_fails_the_job_as_a_job(
    tmp_path: Path, url: str, catalog: Catalog, blocker: Path
) -> None:
    daemon = Daemon(
        tmp_path, url, DQD_HOST_LOCK=str(blocker / "host.lock"), DQD_WORKER__MAX_ATTEMPTS="2"
    ).start()
    try:
        data = write_model(daemon.watch / "tiny.onnx", seed=9).read_bytes()
        digest = hashlib.sha256(data).hexdigest()

        def failed() -> list[object] | None:
            jobs = jobs_for(catalog, digest)
            return jobs if jobs and jobs[0].state is JobState.FAILED else None

        wait_for("the job to fail as a job", failed, 60)
        (job,) = jobs_for(catalog, digest)
        assert job.attempts == 2  # retried with backoff first
        assert (job.last_error or "").startswith("environment: ") and "host_lock" in (job.last_error or "")
        assert decisions_per_sha(catalog).get(digest) is None  # never the model's decision
        assert daemon.has_logged("environment_failed")
    finally:
        daemon.kill()


def test_process_without_onnxruntime_exits_3_naming_it(tmp_path: Path, url: str) -> None:
    # A module that fails to import as a missing onnxruntime does, first on the path: the
    # closest to an environment without the package that the test environment allows.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "onnxruntime.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'onnxruntime'\", name='onnxruntime')\n"
    )
    model = write_model(tmp_path / "m" / "tiny.onnx", seed=10)
    path = os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")])
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")}
    done = subprocess.run(
        [*DQD, "process", str(model)],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": path, "DQD_DATABASE_URL": url, "DQD_HOST_LOCK": str(tmp_path / "lock")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert "onnxruntime is not installed" in done.stderr and "Traceback" not in done.stderr
