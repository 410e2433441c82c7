"""Issue 9, scenario 7: a kill between a decision and its job's completion must not decide twice.

The daemon is SIGKILLed by a test-only hook (``DQD_TEST_HOOK_KILL_AFTER_COMMIT``,
read by dqd.daemon.worker) right after the decision commits and before
anything is published; the restarted daemon finds the job done, decides
nothing again, and publishes what the committed decision says.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.daemon.worker import TEST_HOOK_KILL_AFTER_COMMIT
from dqd.domain import JobState
from tests.acceptance.harness import Daemon, decisions_per_sha, jobs_for, wait_for
from tests.acceptance.tiny import write_model

pytestmark = pytest.mark.slow


def test_kill_after_the_decision_commits_decides_once_and_publishes_on_restart(
    tmp_path: Path, catalog: Catalog
) -> None:
    publish = tmp_path / "publish"
    daemon = Daemon(tmp_path, f"sqlite:///{tmp_path / 'dqd.db'}", DQD_PUBLISH_DIR=str(publish))
    model = write_model(daemon.watch / "m.onnx", seed=70)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    try:
        daemon.start(**{TEST_HOOK_KILL_AFTER_COMMIT: "1"})
        assert daemon.process is not None
        daemon.process.wait(60)  # killed by the hook
        assert daemon.process.returncode == -9
        (job,) = jobs_for(catalog, digest)
        assert job.state is JobState.DONE  # completed in the decision's own commit
        assert decisions_per_sha(catalog) == {digest: 1}
        assert not publish.exists() or not any(publish.rglob("m.onnx"))  # killed before publishing

        daemon.start()  # no hook
        (host_class,) = {j.host_class for j in catalog.list_jobs()}
        wait_for("m.onnx published after the restart", lambda: (publish / host_class / "m.onnx").exists(), 20)
        assert daemon.stop() == 0
        assert decisions_per_sha(catalog) == {digest: 1}
        assert [j.attempts for j in jobs_for(catalog, digest)] == [1]
    finally:
        daemon.kill()
