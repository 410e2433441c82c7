"""Issue 9, scenario 8: `dqd status` after its daemon was killed says the heartbeat is stale and
what happens to the running job; it shows the running job's stage."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.catalog.tables import JobRow
from dqd.domain import JobState
from tests.acceptance.harness import DQD, SLOW_ENGINE, Daemon, wait_for
from tests.acceptance.tiny import write_model

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    # An 8 s lease: long enough to see a stale heartbeat while the lease still holds.
    url = f"sqlite:///{tmp_path / 'dqd.db'}"
    started = Daemon(tmp_path, url, **SLOW_ENGINE, DQD_WORKER__LEASE_SECONDS="8")
    yield started
    started.kill()


def status(daemon: Daemon, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")}
    ran = subprocess.run(
        [*DQD, "status", *args],
        cwd=daemon.workdir,
        env={**clean, **daemon.env, **env},  # the daemon's settings: heartbeat 0.5 s
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return ran


def test_status_after_the_daemon_was_killed_mid_job(daemon: Daemon) -> None:
    write_model(daemon.watch / "m.onnx", seed=31)
    daemon.start()
    catalog = Catalog.from_url(daemon.database_url)
    try:
        (job,) = wait_for("a running job", lambda: catalog.list_jobs(states=[JobState.RUNNING]), 60)
        # Judged with a 2 s heartbeat (stale after 6 s), so a loaded machine's late beat is not stale.
        live = json.loads(status(daemon, "--json", DQD_WORKER__HEARTBEAT_SECONDS="2").stdout)
        assert [h["stale"] for h in live["hosts"]] == [False]
        assert [j["stale"] for j in live["running"]] == [False]

        daemon.kill()
        time.sleep(2)  # more than three heartbeats of 0.5 s, less than the lease
        killed = json.loads(status(daemon, "--json").stdout)
        (host,) = killed["hosts"]
        (running,) = killed["running"]
        assert host["stale"] is True and running["id"] == job.id and running["stale"] is True
        assert "returns to the queue when its lease expires" in running["note"]

        expired = catalog.get_job(job.id).lease_expires_at
        assert expired is not None
        time.sleep(max(0.0, (expired - datetime.now(UTC)).total_seconds()) + 0.2)
        # The worker records what the job is doing; status shows it with its age.
        with catalog.tx.write() as session:
            row = session.get(JobRow, job.id)
            assert row is not None
            row.stage, row.stage_started_at = "benchmark u8u8", datetime.now(UTC) - timedelta(seconds=4)
        text = status(daemon).stdout
        assert re.search(rf"running: job {job.id} m\.onnx .* s, stage benchmark u8u8 for \d+\.\d s\n", text)
        assert "STALE: its lease expired" in text and "takes it again (attempt 2 of 3)" in text
        assert "STALE: no heartbeat for over 2 s" in text
    finally:
        catalog.close()
