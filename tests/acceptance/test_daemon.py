"""``dqd run`` as a real subprocess on a real folder, with SQLite and with Postgres, and the real engine."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.domain import JobKind, JobState, Outcome
from tests.acceptance.harness import (
    SLOW_ENGINE,
    Daemon,
    age_decision,
    decisions_per_sha,
    done_count,
    jobs_for,
    wait_for,
)
from tests.acceptance.tiny import tiny_model_bytes, write_model

pytestmark = pytest.mark.slow


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dqd.db'}"  # the daemon migrates it on start


def _open_catalog(url: str) -> Iterator[Catalog]:
    catalog = Catalog.from_url(url)
    yield catalog
    catalog.close()


@pytest.fixture
def postgres_catalog(postgres_url: str) -> Iterator[Catalog]:
    yield from _open_catalog(postgres_url)


@pytest.fixture
def sqlite_catalog(sqlite_url: str) -> Iterator[Catalog]:
    """For tests of behaviour that does not depend on the catalog backend: they run once, on SQLite."""
    yield from _open_catalog(sqlite_url)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test starts; any still running at the end are killed."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()


def new_daemon(daemons: list[Daemon], workdir: Path, database_url: str, **env: str) -> Daemon:
    daemon = Daemon(workdir, database_url, **env)
    daemons.append(daemon)
    return daemon


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_processed_once(catalog: Catalog, shas: set[str]) -> None:
    decisions = decisions_per_sha(catalog)
    for digest in shas:
        jobs = jobs_for(catalog, digest)
        assert len(jobs) == 1, f"{digest[:12]}: {len(jobs)} jobs"
        assert jobs[0].state is JobState.DONE, jobs[0]
        assert decisions.get(digest) == 1, f"{digest[:12]}: {decisions.get(digest)} decisions"


def slow_write(path: Path, data: bytes, chunks: int, pause: float, during: object = None) -> float:
    """Write ``data`` in chunks through one open handle; returns the wall time of the close."""
    size = len(data) // chunks + 1
    with path.open("wb") as handle:
        for start in range(0, len(data), size):
            handle.write(data[start : start + size])
            handle.flush()
            os.fsync(handle.fileno())
            if callable(during):
                during()
            time.sleep(pause)
    return time.time()


def check_slow_write_gives_one_job(catalog: Catalog, watch: Path, seed: int) -> None:
    data = tiny_model_bytes(seed, hidden=96)
    target = watch / "slow" / "model.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)

    def nothing_queued_yet() -> None:
        assert "slow/model.onnx" not in catalog.known_paths(), "registered while still being written"

    closed_at = slow_write(target, data, chunks=8, pause=0.3, during=nothing_queued_yet)
    digest = sha(data)
    job = wait_for("the slow file's job to finish", lambda: done_count(catalog, {digest}), 60)
    assert job == 1
    (only,) = jobs_for(catalog, digest)
    assert only.created_at.timestamp() >= closed_at - 0.05, "queued before the write completed"
    decision = catalog.latest_decision(digest, only.host_class)
    assert decision is not None and decision.outcome is not Outcome.ERROR, decision
    assert len(catalog.known_paths()) >= 1 and catalog.paths_for_content(digest) == ["slow/model.onnx"]


def test_slow_write_then_a_dozen_models_then_sigterm(
    tmp_path: Path, sqlite_url: str, sqlite_catalog: Catalog, daemons: list[Daemon]
) -> None:
    # Postgres with several daemons, a kill and a tick: tests/acceptance/test_fleet.py.
    database_url, catalog = sqlite_url, sqlite_catalog
    daemon = new_daemon(daemons, tmp_path, database_url, DQD_WORKER__CONCURRENCY="2").start()
    check_slow_write_gives_one_job(catalog, daemon.watch, seed=1000)

    shas = set()
    for index in range(12):  # a burst for two workers; tests/perf/bench_daemon.py runs hundreds
        shas.add(sha(write_model(daemon.watch / f"batch/m{index:02d}.onnx", seed=index).read_bytes()))
    wait_for("12 models processed", lambda: done_count(catalog, shas) == 12 or None, 240, interval=0.25)
    assert_processed_once(catalog, shas)
    assert all(job.attempts == 1 for job in catalog.list_jobs())

    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(10) == 0
    assert time.monotonic() - started < 5  # the grace period: nothing was running
    assert daemon.has_logged("daemon_stopped")


@pytest.mark.postgres
def test_kill9_sigterm_and_files_dropped_while_stopped(
    tmp_path: Path, postgres_url: str, postgres_catalog: Catalog, daemons: list[Daemon]
) -> None:
    """On Postgres: tests/acceptance/test_kill_loop.py kills a daemon on SQLite again and again."""
    database_url, catalog = postgres_url, postgres_catalog
    first = new_daemon(daemons, tmp_path, database_url, **SLOW_ENGINE).start()
    data = write_model(first.watch / "a" / "1" / "model.onnx", seed=1).read_bytes()
    digest = sha(data)

    def running_job() -> tuple[int, int] | None:
        """(attempts, lost leases) of the running job."""
        jobs = [j for j in jobs_for(catalog, digest) if j.state is JobState.RUNNING]
        return (jobs[0].attempts, jobs[0].lost_leases) if jobs else None

    assert wait_for("the job to start", running_job, 30) == (1, 0)
    first.kill()  # SIGKILL mid-job: no chance to release it

    # Restarted: the lease (3 s) expires, the job is claimed again. Stop it gracefully mid-run.
    second = new_daemon(daemons, tmp_path, database_url, **SLOW_ENGINE, DQD_WORKER__GRACE_SECONDS="1").start()
    # The kill is the process's failure, not the model's: the attempt was given back.
    assert wait_for("the job to be re-run", lambda: running_job() == (1, 1) or None, 30)
    started = time.monotonic()
    second.signal(signal.SIGTERM)
    assert second.wait_exit(15) == 0
    assert time.monotonic() - started < 1 + 4, "took longer than the grace period (plus shutdown)"
    (job,) = jobs_for(catalog, digest)
    assert job.state is JobState.QUEUED and job.lease_owner is None, job
    assert job.attempts == 0, "a job given back at shutdown must not lose an attempt"
    assert decisions_per_sha(catalog).get(digest) is None  # the aborted run recorded nothing

    # Dropped while no daemon runs: picked up by the start-up reconciliation.
    dropped = {
        sha(write_model(first.watch / f"while-down/m{i}.onnx", seed=100 + i).read_bytes()) for i in range(2)
    }
    third = new_daemon(daemons, tmp_path, database_url).start()
    wait_for("everything processed", lambda: done_count(catalog, dropped | {digest}) == 3 or None, 60)
    assert_processed_once(catalog, dropped | {digest})
    (job,) = jobs_for(catalog, digest)
    assert (job.attempts, job.lost_leases) == (1, 1)  # killed once, released once, done once
    assert third.stop() == 0


def test_forced_polling_observer(
    tmp_path: Path, sqlite_url: str, sqlite_catalog: Catalog, daemons: list[Daemon]
) -> None:
    # The observer does not depend on the catalog backend: SQLite only, once is enough.
    database_url, catalog = sqlite_url, sqlite_catalog
    publish = tmp_path / "publish"
    daemon = new_daemon(
        daemons, tmp_path, database_url, DQD_WATCH__OBSERVER="polling", DQD_PUBLISH_DIR=str(publish)
    ).start()
    assert any(e.get("observer") == "polling" for e in daemon.events() if e.get("action") == "watch_started")
    check_slow_write_gives_one_job(catalog, daemon.watch, seed=2000)
    # A rename into the tree, and a model beside external-data-like companions.
    staging = tmp_path / "staging.onnx"
    moved = sha(write_model(staging, seed=7).read_bytes())
    os.rename(staging, daemon.watch / "moved.onnx")
    others = {sha(write_model(daemon.watch / f"p/m{i}.onnx", seed=300 + i).read_bytes()) for i in range(3)}
    wait_for("polled models processed", lambda: done_count(catalog, others | {moved}) == 4 or None, 60)
    assert_processed_once(catalog, others | {moved})
    # Each model's chosen file is published at <publish_dir>/<host class>/<relative path>.
    import onnx

    (host_class,) = {job.host_class for job in catalog.list_jobs()}
    published = [publish / host_class / "p" / f"m{index}.onnx" for index in range(3)]
    # Published after the job's decision commits; its provenance file is written after the copy.
    provenance = [path.with_name(path.name + ".dqd.json") for path in published]
    wait_for("published", lambda: all(path.exists() for path in provenance) or None, 30)
    for path in published:
        onnx.checker.check_model(str(path))
    # Deleting a model marks its path removed; its history stays.
    (daemon.watch / "moved.onnx").unlink()
    wait_for("removal noticed", lambda: "moved.onnx" not in catalog.known_paths() or None, 10)
    assert "moved.onnx" in catalog.known_paths(include_removed=True)
    assert daemon.stop() == 0


def test_nightly_tick_requeues_only_stale_models(
    tmp_path: Path, sqlite_url: str, sqlite_catalog: Catalog, daemons: list[Daemon]
) -> None:
    # On Postgres, three daemons' ticks at once: tests/acceptance/test_fleet.py.
    database_url, catalog = sqlite_url, sqlite_catalog
    # First pass: decide three models, then age one decision's onnxruntime version.
    daemon = new_daemon(daemons, tmp_path, database_url).start()
    shas = [sha(write_model(daemon.watch / f"n/m{i}.onnx", seed=500 + i).read_bytes()) for i in range(3)]
    wait_for("first decisions", lambda: done_count(catalog, set(shas)) == 3 or None, 60)
    assert daemon.stop() == 0
    stale_sha = shas[0]
    old = catalog.latest_decision(stale_sha, jobs_for(catalog, stale_sha)[0].host_class)
    assert old is not None
    age_decision(catalog, old.id, ort_version="1.0.0")

    # Two daemons of the same class fire the same tick: each stale model is queued once.
    fire = datetime.now(UTC) + timedelta(seconds=6)
    cron = f"{fire.second} {fire.minute} {fire.hour} * * *"
    schedule = {"DQD_SCHEDULE__ENABLED": "true", "DQD_SCHEDULE__CRON": cron, "DQD_SCHEDULE__TIMEZONE": "UTC"}
    pair = [
        new_daemon(daemons, tmp_path / name, database_url, **schedule, DQD_WATCH_DIR=str(daemon.watch))
        for name in ("d1", "d2")
    ]
    for other in pair:
        other.workdir.mkdir()
        other.start()
    wait_for("both ticks", lambda: all(d.has_logged("schedule_tick") for d in pair) or None, 30)
    requeued = [j for j in catalog.list_jobs() if j.kind is JobKind.REQUANTIZE]
    assert [j.sha256 for j in requeued] == [stale_sha], requeued
    assert requeued[0].idempotency_key.startswith(f"requantize:{fire:%Y%m%dT%H%M%S}Z:")
    wait_for("requantized", lambda: catalog.get_job(requeued[0].id).state is JobState.DONE or None, 60)
    fresh = catalog.latest_decision(stale_sha, requeued[0].host_class)
    assert fresh is not None and fresh.id != old.id and fresh.ort_version != "1.0.0"
    for other in pair:
        assert other.stop() == 0


def test_postgres_stopped_mid_job_and_restarted_is_waited_out(tmp_path: Path, daemons: list[Daemon]) -> None:
    """A private cluster is really stopped while a job runs and a model lands: the daemon stays up,
    reconnects when Postgres is back, and every model ends decided exactly once."""
    from tests.acceptance.pgcluster import PrivateCluster

    cluster = PrivateCluster().start()
    try:
        daemon = new_daemon(daemons, tmp_path, cluster.url, **SLOW_ENGINE)
        upgraded = daemon.cli("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        daemon.start()
        catalog = Catalog.from_url(cluster.url)
        before = sha(write_model(daemon.watch / "before.onnx", seed=900).read_bytes())
        wait_for("a job to run", lambda: daemon.engine_children() or None, 60)
        catalog.close()
        cluster.stop()
        during = sha(write_model(daemon.watch / "during.onnx", seed=901).read_bytes())
        wait_for("the outage to be noticed", lambda: daemon.has_logged("watch_error") or None, 30)
        time.sleep(5)  # longer than the lease: the running job's lease lapses while Postgres is down
        assert daemon.process is not None and daemon.process.poll() is None, "the daemon died in the outage"
        cluster.start()
        catalog = Catalog.from_url(cluster.url)
        wait_for("both models", lambda: done_count(catalog, {before, during}) == 2 or None, 120)
        assert_processed_once(catalog, {before, during})
        catalog.close()
        assert daemon.stop() == 0
    finally:
        cluster.destroy()


def test_second_signal_exits_at_once(tmp_path: Path, daemons: list[Daemon]) -> None:
    import psutil

    url = f"sqlite:///{tmp_path / 'dqd.db'}"
    daemon = new_daemon(daemons, tmp_path, url, **SLOW_ENGINE, DQD_WORKER__GRACE_SECONDS="60").start()
    write_model(daemon.watch / "m.onnx", seed=42)
    assert daemon.process is not None
    parent = psutil.Process(daemon.process.pid)
    engine_children = wait_for("the engine's child process", lambda: parent.children(recursive=True), 30)
    daemon.signal(signal.SIGTERM)
    wait_for("the drain to begin", lambda: daemon.has_logged("daemon_stopping") or None, 10)
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(5) == 128 + signal.SIGTERM
    assert time.monotonic() - started < 3, "a second signal must not wait for the grace period"
    _gone, alive = psutil.wait_procs(engine_children, timeout=2)
    assert not alive, "the engine's child outlived the daemon"
