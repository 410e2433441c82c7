"""Issue 16 §4 with a real ``dqd run`` and real CPU hogs: a busy host leads to a retry, not a decision.

Hogs (one busy loop per usable core) run while the model's benchmark times
with every core; the busy-host check (``benchmark.max_foreign_load``, set here:
the rest of the suite turns it off) puts the job back to wait without using an
attempt, with the reason in ``dqd jobs``. Once the hogs are gone the job runs
again and decides, and the benchmark rows carry the foreign load they saw.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from dqd.catalog import Catalog
from dqd.cores import usable_cores
from tests.acceptance.harness import Daemon, wait_for
from tests.acceptance.tiny import write_model

pytestmark = [pytest.mark.slow, pytest.mark.serial]  # it measures the host's load

MAX_FOREIGN_LOAD = 0.3
RETRY_SECONDS = 5


@contextmanager
def cpu_hogs(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_a_cpu_hog_during_the_benchmark_defers_the_job_then_it_decides(
    tmp_path, url: str, catalog: Catalog
) -> None:
    cores = usable_cores()
    daemon = Daemon(
        tmp_path,
        url,
        DQD_BENCHMARK__MAX_FOREIGN_LOAD=str(MAX_FOREIGN_LOAD),
        DQD_BENCHMARK__BUSY_RETRY_SECONDS=str(RETRY_SECONDS),
        DQD_BENCHMARK__THREADS=str(cores),  # every core: a hog on any of them competes
        DQD_BENCHMARK__MIN_SECONDS="0.5",
        DQD_BENCHMARK__MAX_SECONDS="1",
    )
    model = write_model(daemon.watch / "m.onnx", seed=3, hidden=256)
    model.with_name("m.dqd.toml").write_text('pin = { weight_type = "U8U8" }\n')
    daemon.start()
    try:
        with cpu_hogs(cores):
            deferred = wait_for(
                "the busy host to defer the job",
                lambda: next((e for e in daemon.events() if e.get("action") == "job_deferred"), None),
                120,
            )
        listed = daemon.cli("jobs", "--json")
        assert listed.returncode == 0, listed.stderr
        (job,) = json.loads(listed.stdout)
        assert deferred["foreign_load"] > MAX_FOREIGN_LOAD
        assert job["state"] == "queued" and job["attempts"] == 0  # the busy run used no attempt
        assert "waiting for a quiet host" in job["last_error"] and "foreign load" in job["last_error"]
        assert catalog.latest_decision(job["sha256"], job["host_class"]) is None  # nothing decided

        done = wait_for(
            "the job to run again on a quiet host",
            lambda: next((e for e in daemon.events() if e.get("action") == "job_done"), None),
            120,
        )
    finally:
        daemon.stop()
    assert done["outcome"] == "quantized"
    print(
        f"\ndeferred at foreign load {deferred['foreign_load']} (threshold {MAX_FOREIGN_LOAD}, {cores} hogs)"
    )
    shown = daemon.cli("show", "m.onnx", "--json")
    assert shown.returncode == 0, shown.stderr
    benchmarks = json.loads(shown.stdout)["benchmarks"]
    assert benchmarks and all(b["load_source"] for b in benchmarks)
    assert all(b["foreign_load"] <= MAX_FOREIGN_LOAD for b in benchmarks)
    (final,) = json.loads(daemon.cli("jobs", "--json").stdout)
    assert final["state"] == "done" and final["attempts"] == 1
