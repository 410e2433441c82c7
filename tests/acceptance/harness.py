"""Run ``dqd run`` as a real subprocess on a temporary folder, and watch its catalog from outside."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil

from dqd.catalog import Catalog
from dqd.domain import Job, JobState
from tests.fast import FAST_BENCHMARK, as_env

T = TypeVar("T")
DQD = [sys.executable, "-c", "from dqd.cli import main; main()"]

# Tiny budgets: the acceptance suite tests the daemon, not the benchmark's statistics.
FAST_ENGINE = as_env(
    {
        **FAST_BENCHMARK,
        "benchmark.warmup_runs": 1,
        "benchmark.min_seconds": 0.05,
        "benchmark.max_seconds": 0.15,
    }
)
# Slow enough that a test can act while a job runs (two variants, about 3 s each).
SLOW_ENGINE = {**FAST_ENGINE, "DQD_BENCHMARK__MIN_SECONDS": "3", "DQD_BENCHMARK__MAX_SECONDS": "3"}


def one_shot_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a one-shot ``dqd`` command in ``workdir``: its own catalog, folders and lock."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")}
    env.update(
        FAST_ENGINE,
        DQD_DATABASE_URL=f"sqlite:///{workdir / 'dqd.db'}",
        DQD_WATCH_DIR=str(workdir / "models"),
        DQD_OUTPUT_DIR=str(workdir / "out"),
        DQD_HOST_LOCK=str(workdir / "host.lock"),
    )
    return env | extra


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (a daemon's API, so parallel runs never share one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


class Daemon:
    """One ``dqd run`` process: its folder, its catalog URL, its log."""

    def __init__(self, workdir: Path, database_url: str, **env: str) -> None:
        self.workdir = workdir
        self.watch = workdir / "models"
        self.database_url = database_url
        self.env = {
            "DQD_DATABASE_URL": database_url,
            "DQD_WATCH_DIR": str(self.watch),
            "DQD_OUTPUT_DIR": str(workdir / "out"),
            "DQD_LOG_FORMAT": "json",
            "DQD_WATCH__SETTLE_SECONDS": "1",
            "DQD_WATCH__POLLING_SETTLE_SECONDS": "2",  # the default 30 s is for real network mounts
            "DQD_WATCH__POLL_INTERVAL": "0.25",
            "DQD_WORKER__POLL_SECONDS": "0.25",
            "DQD_WORKER__HEARTBEAT_SECONDS": "0.5",
            "DQD_WORKER__LEASE_SECONDS": "3",
            "DQD_WORKER__GRACE_SECONDS": "5",
            "DQD_WORKER__BACKOFF_SECONDS": "1",
            "DQD_SCHEDULE__ENABLED": "false",
            # A private host lock: other dqd processes on this machine must not slow the test down.
            "DQD_HOST_LOCK": str(workdir / "host.lock"),
            **FAST_ENGINE,
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"daemon-{self.runs}.log"

    def start(self, **env: str) -> Daemon:
        self.runs += 1
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*DQD, "run"], cwd=self.workdir, env=self.cli_env(**env), stderr=log, stdout=log
            )
        wait_for("the daemon to start", lambda: self.has_logged("daemon_running") or self._died(), 30)
        assert self.process.poll() is None, f"daemon exited early:\n{self.log_text()}"
        return self

    def cli_env(self, **env: str) -> dict[str, str]:
        """The environment of a ``dqd`` command on this daemon's catalog and folders (``env`` on top)."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")}
        return {**clean, **self.env, **env}

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """A one-shot ``dqd`` command on this daemon's catalog and folders (``env`` on top; UTF-8 output)."""
        return subprocess.run(
            [*DQD, *args],
            cwd=self.workdir,
            env=self.cli_env(**env),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def engine_children(self) -> list[psutil.Process]:
        """The engine children at work: forked by the daemon's fork server, so its grandchildren."""
        assert self.process is not None
        try:
            top = psutil.Process(self.process.pid)
            return [p for p in top.children(recursive=True) if p.ppid() != top.pid]
        except psutil.Error:
            return []

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def has_logged(self, action: str) -> bool:
        return any(event.get("action") == action for event in self.events())

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.signal(signal.SIGTERM)
        return self.wait_exit(30)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def jobs_for(catalog: Catalog, sha256: str) -> list[Job]:
    return [job for job in catalog.list_jobs() if job.sha256 == sha256]


def done_count(catalog: Catalog, shas: set[str]) -> int:
    return sum(1 for job in catalog.list_jobs(states=[JobState.DONE]) if job.sha256 in shas)


def decisions_per_sha(catalog: Catalog) -> dict[str, int]:
    counts: dict[str, int] = {}
    for decision in catalog.recent_decisions(10_000):
        counts[decision.sha256] = counts.get(decision.sha256, 0) + 1
    return counts


def age_decision(catalog: Catalog, decision_id: int, *, ort_version: str) -> None:
    """Test set-up: pretend a decision was made by an older onnxruntime (it is then stale)."""
    from sqlalchemy import update

    from dqd.catalog.tables import DecisionRow

    with catalog.tx.write() as session:
        session.execute(
            update(DecisionRow).where(DecisionRow.id == decision_id).values(ort_version=ort_version)
        )
