"""``kill -9`` of a real daemon at random moments of a run, then a clean finish: what was lost.

Shared by the CI test (tests/acceptance/test_kill_loop.py, a short run) and
the long run on demand (tests/perf/kill_loop.py: 50 models, 10 kills or more).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

from dqd.catalog import Catalog
from dqd.domain import Job, JobState
from tests.acceptance.harness import Daemon, decisions_per_sha, wait_for
from tests.acceptance.tiny import write_model


@dataclass(frozen=True)
class KillLoopReport:
    models: int
    kills: int
    killed_mid_job: int  # kills that landed while an engine child was at work
    decided: int  # model versions with a decision
    lost: int  # model versions without one at the end
    duplicates: int  # decisions beyond the first for a model version
    leftovers: tuple[str, ...]  # scratch or partial files left in the output or publish folders
    failed_jobs: tuple[str, ...]  # jobs that ended failed, with their last error
    published: int
    seconds: float


def run_kill_loop(
    workdir: Path, database_url: str, *, models: int, kills: int, seed: int = 0
) -> KillLoopReport:
    started = time.monotonic()
    rng = random.Random(seed)
    daemon = Daemon(workdir, database_url, DQD_PUBLISH_DIR=str(workdir / "published"))
    shas: set[str] = set()
    counts: dict[str, int] = {}
    failed: list[Job] = []
    for index in range(models):
        write_model(daemon.watch / f"m{index:03d}.onnx", seed=1000 + index)
    catalog = Catalog.from_url(database_url)
    mid_job = 0
    try:
        for _ in range(kills):
            daemon.start()
            time.sleep(rng.uniform(0.3, 2.5))
            mid_job += bool(daemon.engine_children())
            daemon.kill()
        daemon.start()
        with contextlib.suppress(AssertionError):  # what is still missing then is reported as lost
            wait_for("every model to be decided", lambda: _all_done(catalog, models), 60 + 5 * models)
        failed = catalog.list_jobs(states=[JobState.FAILED])
        assert daemon.stop() == 0, daemon.log_text()[-3000:]
        shas = {p.sha256 for p in catalog.known_paths().values() if p.sha256}
        counts = decisions_per_sha(catalog)
    finally:
        daemon.kill()
        catalog.close()
    decided = sum(1 for sha in shas if counts.get(sha))
    return KillLoopReport(
        models=models,
        kills=kills,
        killed_mid_job=mid_job,
        decided=decided,
        lost=models - decided,
        duplicates=sum(max(0, counts.get(sha, 0) - 1) for sha in shas),
        leftovers=tuple(_leftovers(workdir / "out") + _leftovers(workdir / "published")),
        failed_jobs=tuple(f"{job.source_path}: {job.last_error}" for job in failed),
        published=sum(1 for _ in (workdir / "published").rglob("*.onnx")),
        seconds=time.monotonic() - started,
    )


def _all_done(catalog: Catalog, models: int) -> bool:
    done = {job.sha256 for job in catalog.list_jobs(states=[JobState.DONE])}
    busy = catalog.list_jobs(states=[JobState.QUEUED, JobState.RUNNING])
    return len(done) >= models and not busy


def _leftovers(folder: Path) -> list[str]:
    """Names no reader should ever see: dqd's scratch folders and files, partial copies."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [*dirnames, *filenames]:
            if name.startswith(".dqd-") or name.endswith(".tmp"):
                found.append(str(Path(dirpath, name).relative_to(folder)))
    return found
