"""Issue 14: a fleet on one Postgres catalog and one model folder, proven on one machine.

Three real ``dqd run`` processes under declared identities (``DQD_HOST_ID``,
``DQD_HOST_CLASS`` with ``DQD_ALLOW_HOST_OVERRIDE``): two of class A, one of
class B, sharing the watched folder and the output folder. Every (model
version, class) pair is decided exactly once, by a host of that class, the
two class-A daemons share the work; a ``kill -9`` mid-job hands the job to
the other class-A daemon once its lease lapses; ``dqd requantize --stale`` run
from all three at once queues each stale pair once; a class whose last host
has gone gets no new jobs, and its queued ones say why they wait.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.domain import JobKind, JobState
from tests.acceptance.harness import DQD, SLOW_ENGINE, Daemon, age_decision, wait_for
from tests.acceptance.tiny import write_model

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CLASS_A, CLASS_B = "x86_64-fleeta", "x86_64-fleetb"
HOST_TTL_SECONDS = 4


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pairs_done(catalog: Catalog, shas: set[str]) -> bool:
    done = {(j.sha256, j.host_class) for j in catalog.list_jobs(states=[JobState.DONE]) if j.sha256 in shas}
    return len(done) == 2 * len(shas)


def _decisions(catalog: Catalog) -> Counter[tuple[str, str]]:
    return Counter((d.sha256, d.host_class) for d in catalog.recent_decisions(10_000))


@pytest.mark.parametrize("models", [12, pytest.param(60, marks=pytest.mark.large)])
def test_three_daemons_two_classes_one_catalog(tmp_path: Path, postgres_url: str, models: int) -> None:
    shared, out = tmp_path / "models", tmp_path / "out"
    shared.mkdir()
    fleet: dict[str, Daemon] = {}
    for name, host_class in (("a1", CLASS_A), ("a2", CLASS_A), ("b1", CLASS_B)):
        (tmp_path / name).mkdir()
        fleet[name] = Daemon(
            tmp_path / name,
            postgres_url,
            DQD_WATCH_DIR=str(shared),
            DQD_OUTPUT_DIR=str(out),
            DQD_HOST_ID=name,
            DQD_HOST_CLASS=host_class,
            DQD_ALLOW_HOST_OVERRIDE="true",
            DQD_WORKER__HOST_TTL_SECONDS=str(HOST_TTL_SECONDS),
        )
    catalog = Catalog.from_url(postgres_url)
    try:
        for daemon in fleet.values():
            daemon.start()
            assert daemon.has_logged("host_declared")
        hosts = {h.host_id: h for h, _, _ in catalog.list_hosts()}
        assert {hosts[n].host_class for n in ("a1", "a2")} == {CLASS_A} and hosts["b1"].host_class == CLASS_B
        assert all(hosts[n].declared for n in fleet)

        # 1. Every pair decided once, by a host of its class; the two class-A daemons share the work.
        shas = {_sha(write_model(shared / f"m{i:02d}.onnx", seed=3000 + i, hidden=32)) for i in range(models)}
        wait_for("every pair decided", lambda: _pairs_done(catalog, shas) or None, 60 + 10 * models)
        decisions = catalog.recent_decisions(10_000)
        assert set(_decisions(catalog).values()) == {1} and len(decisions) == 2 * models
        by_host = Counter(d.host_id for d in decisions)
        assert {d.host_id for d in decisions if d.host_class == CLASS_B} == {"b1"}
        assert {d.host_id for d in decisions if d.host_class == CLASS_A} <= {"a1", "a2"}
        assert min(by_host["a1"], by_host["a2"]) >= models // 4, by_host

        # 2. kill -9 of a class-A daemon mid-job: the other one takes the job once the lease lapses.
        a1, a2 = fleet["a1"], fleet["a2"]
        assert a1.stop() == 0
        a1.start(**SLOW_ENGINE)  # long jobs: a kill lands mid-job
        late = {_sha(write_model(shared / f"late{i}.onnx", seed=3100 + i, hidden=32)) for i in range(2)}
        assert a1.process is not None
        owner = f"{socket.gethostname()}:{a1.process.pid}:"
        held = wait_for(
            "a1 to run a job",
            lambda: next(
                (
                    j
                    for j in catalog.list_jobs(states=[JobState.RUNNING])
                    if (j.lease_owner or "").startswith(owner) and a1.engine_children()
                ),
                None,
            ),
            60,
            interval=0.05,
        )
        a1.kill()
        wait_for("every late pair decided", lambda: _pairs_done(catalog, shas | late) or None, 120)
        taken = catalog.get_job(held.id)
        assert taken.lost_leases == 1 and taken.state is JobState.DONE
        (decision,) = [
            d for d in catalog.recent_decisions(10_000) if (d.sha256, d.host_class) == (held.sha256, CLASS_A)
        ]
        assert decision.host_id == "a2"
        assert set(_decisions(catalog).values()) == {1}

        # 3. A nightly requantization fired from all three hosts at once queues each stale pair once.
        for daemon in (a2, fleet["b1"]):
            assert daemon.stop() == 0
        stale = sorted(shas)[:4]
        for d in catalog.recent_decisions(10_000):
            if d.sha256 in stale:
                age_decision(catalog, d.id, ort_version="1.0.0")
        ticks = [
            subprocess.Popen(
                [*DQD, "requantize", "--stale"],
                cwd=daemon.workdir,
                env=daemon.cli_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for daemon in fleet.values()
        ]
        for tick in ticks:
            _, err = tick.communicate(timeout=120)
            assert tick.returncode == 0, err
        requeued = Counter(
            (j.sha256, j.host_class) for j in catalog.list_jobs() if j.kind is JobKind.REQUANTIZE
        )
        assert requeued == Counter({(s, c): 1 for s in stale for c in (CLASS_A, CLASS_B)})

        # 4. Class B's last host is gone: its queued jobs say why they wait, and it gets no new jobs.
        time.sleep(HOST_TTL_SECONDS + 1)
        a2.start()
        listed = a2.cli("jobs", "--state", "queued", "--json")
        assert listed.returncode == 0, listed.stderr
        waiting = {(j["sha256"], j["host_class"]): j["waiting"] for j in json.loads(listed.stdout)}
        assert all(
            (reason or "").startswith(f"waiting: no host of class {CLASS_B}")
            for (_, c), reason in waiting.items()
            if c == CLASS_B
        )
        assert sum(1 for _, c in waiting if c == CLASS_B) == len(stale)
        assert all(reason is None for (_, c), reason in waiting.items() if c == CLASS_A)
        table = a2.cli("jobs")
        assert f"waiting: no host of class {CLASS_B}" in table.stdout
        newest = _sha(write_model(shared / "after.onnx", seed=3200, hidden=32))
        wait_for(
            "the new model decided for class A",
            lambda: any(j.sha256 == newest for j in catalog.list_jobs(states=[JobState.DONE])) or None,
            60,
        )
        assert {j.host_class for j in catalog.list_jobs() if j.sha256 == newest} == {CLASS_A}
        assert a2.stop() == 0
    finally:
        catalog.close()
        for daemon in fleet.values():
            daemon.kill()
