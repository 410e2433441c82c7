"""Issue 15: an output or publish volume that is full or read-only, for real (a small tmpfs).

A real ``dqd run`` on SQLite. The job fails as a job, naming the volume and
the setting, with no decision recorded and no partial file left; once space
(or write access) returns, a retry decides it. A full publish volume defers
publishing to the next scan, which completes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.domain import Job, JobState
from tests.acceptance.harness import Daemon, decisions_per_sha, jobs_for, wait_for
from tests.acceptance.tiny import write_model
from tests.acceptance.volumes import files_under, fill, set_read_only, small_tmpfs

pytestmark = pytest.mark.slow


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "volume", size_kib=1024) as path:
        yield path


def _job_in(catalog: Catalog, digest: str, state: JobState) -> Job | None:
    jobs = jobs_for(catalog, digest)
    return jobs[0] if jobs and jobs[0].state is state else None


def _fail_then_retry(daemon: Daemon, catalog: Catalog, digest: str, restore: Callable[[], None]) -> Job:
    failed = wait_for("the job to fail as a job", lambda: _job_in(catalog, digest, JobState.FAILED), 60)
    assert decisions_per_sha(catalog).get(digest) is None  # never the model's decision
    restore()
    retried = daemon.cli("jobs", "retry", str(failed.id))
    assert retried.returncode == 0, retried.stderr
    wait_for("the retried job to be done", lambda: _job_in(catalog, digest, JobState.DONE), 60)
    assert decisions_per_sha(catalog).get(digest) == 1
    return failed


def test_a_full_output_volume_fails_the_job_cleanly_and_a_retry_decides_once_space_returns(
    tmp_path: Path, url: str, catalog: Catalog, volume: Path
) -> None:
    filler = fill(volume)
    daemon = Daemon(tmp_path, url, DQD_OUTPUT_DIR=str(volume / "out"), DQD_WORKER__MAX_ATTEMPTS="2")
    daemon.start()
    try:
        digest = hashlib.sha256(write_model(daemon.watch / "tiny.onnx", seed=3).read_bytes()).hexdigest()

        def make_space() -> None:
            # The failed attempts left nothing behind on the volume, not even a scratch file.
            _assert_nothing_but(volume, filler)
            filler.unlink()

        failed = _fail_then_retry(daemon, catalog, digest, make_space)
        assert failed.attempts == 2  # retried with backoff before giving up
        error = failed.last_error or ""
        assert error.startswith("environment: ") and "no space left" in error and "DQD_OUTPUT_DIR" in error
        assert files_under(volume / "out"), "the decided variants are on the volume"
        assert daemon.process is not None and daemon.process.poll() is None
    finally:
        daemon.kill()


def test_a_read_only_output_volume_fails_the_job_cleanly_and_a_retry_decides_once_writable(
    tmp_path: Path, url: str, catalog: Catalog, volume: Path
) -> None:
    (volume / "out").mkdir()
    daemon = Daemon(tmp_path, url, DQD_OUTPUT_DIR=str(volume / "out"), DQD_WORKER__MAX_ATTEMPTS="1")
    daemon.start()
    set_read_only(volume, True)  # after start: the daemon checks the folder when it starts
    try:
        digest = hashlib.sha256(write_model(daemon.watch / "tiny.onnx", seed=4).read_bytes()).hexdigest()
        failed = _fail_then_retry(daemon, catalog, digest, lambda: set_read_only(volume, False))
        error = failed.last_error or ""
        assert error.startswith("environment: ") and "not writable" in error, error
    finally:
        daemon.kill()


def test_a_full_publish_volume_defers_publishing_and_the_next_scan_completes_it(
    tmp_path: Path, url: str, catalog: Catalog, volume: Path
) -> None:
    publish = volume / "published"
    filler = fill(volume)
    daemon = Daemon(tmp_path, url, DQD_PUBLISH_DIR=str(publish), DQD_WATCH__RECONCILE_INTERVAL="1")
    daemon.start()
    try:
        digest = hashlib.sha256(write_model(daemon.watch / "tiny.onnx", seed=5).read_bytes()).hexdigest()
        wait_for("the decision", lambda: _job_in(catalog, digest, JobState.DONE), 60)
        wait_for("publishing to fail", lambda: daemon.has_logged("publish_failed"), 30)
        _assert_nothing_but(volume, filler)
        filler.unlink()
        target = wait_for(
            "the next scan to publish",
            lambda: next(iter(p for p in publish.rglob("tiny.onnx") if p.is_file()), None),
            30,
        )
        assert target.stat().st_size > 0
        assert not [p for p in publish.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    finally:
        daemon.kill()


def _assert_nothing_but(volume: Path, filler: Path) -> None:
    assert files_under(volume, besides=(filler,)) == []
