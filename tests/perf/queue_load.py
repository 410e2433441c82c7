"""The job queue at fleet size, on demand: claims per second, claim latency, duplicates, lost jobs.

    .venv/bin/python -m tests.perf.queue_load --database-url postgresql+psycopg://... \\
        [--jobs 20000] [--workers 1 5 20] [--work-ms 5]
    .venv/bin/python -m tests.perf.queue_load --jobs 20000 --workers 4          # SQLite in a temp folder

The engine is replaced by a sleep of ``--work-ms``: what is measured is the
path a daemon's worker takes per job, for real, in separate processes: claim
(``FOR UPDATE SKIP LOCKED`` on Postgres, ``BEGIN IMMEDIATE`` on SQLite), one
lease renewal, then the decision recorded and the job completed in one
transaction (``record_engine_result(complete_job=...)``), as the worker does.
Printed per run: backend, workers, jobs, claims/s, p50/p95/max claim
latency, duplicate decisions (must be 0), lost jobs (must be 0), wall time.
Each run uses a fresh database (Postgres: a new database on the server).
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, insert, select

from dqd.catalog import Catalog
from dqd.catalog.migrate import upgrade
from dqd.catalog.tables import DecisionRow, JobRow, ModelVersionRow
from dqd.domain import JobState, Outcome
from tests.perf.pgdb import drop_postgres, fresh_postgres
from tests.query_factory import engine_result, host

HOST_CLASS = "x86_64-queueload"
LEASE_SECONDS = 60.0


@dataclass(frozen=True)
class Run:
    backend: str
    workers: int
    jobs: int
    seconds: float
    latencies: list[float]
    duplicates: int
    lost: int


def _fill(url: str, jobs: int) -> None:
    """``jobs`` queued jobs of distinct model versions, inserted in bulk (the set-up is not measured)."""
    catalog = Catalog.from_url(url)
    upgrade(catalog.engine)
    now = time.time()
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(now, UTC)
    versions = [{"sha256": f"{i:064x}", "size_bytes": 1, "first_seen_at": stamp} for i in range(jobs)]
    rows = [
        {
            "kind": "quantize",
            "sha256": f"{i:064x}",
            "host_class": HOST_CLASS,
            "state": JobState.QUEUED.value,
            "attempts": 0,
            "max_attempts": 3,
            "lost_leases": 0,
            "priority": 0,
            "idempotency_key": f"quantize:{i:064x}:{HOST_CLASS}",
            "created_at": stamp,
            "updated_at": stamp,
        }
        for i in range(jobs)
    ]
    catalog.upsert_host(host())  # decisions name the host that measured them
    with catalog.tx.write() as session:
        for start in range(0, jobs, 5000):
            session.execute(insert(ModelVersionRow), versions[start : start + 5000])
            session.execute(insert(JobRow), rows[start : start + 5000])
    catalog.close()


def _work(url: str, index: int, work_ms: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    catalog = Catalog.from_url(url)
    me = host()
    owner = f"queue-load:{index}"
    latencies: list[float] = []
    while True:
        started = time.perf_counter()
        job = catalog.claim_next_job(HOST_CLASS, owner, LEASE_SECONDS)
        latencies.append(time.perf_counter() - started)
        if job is None:
            break
        catalog.renew_lease(job.id, owner, LEASE_SECONDS)
        time.sleep(work_ms / 1000)
        result = engine_result(f"m{job.id}.onnx", outcome=Outcome.KEPT_FP32, sha256=job.sha256)
        catalog.record_engine_result(me, result, complete_job=(job.id, owner))
    catalog.close()
    out.put(latencies[:-1])  # the last claim found nothing: not a claim


def run(url: str, backend: str, jobs: int, workers: int, work_ms: float) -> Run:
    _fill(url, jobs)
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    processes = [context.Process(target=_work, args=(url, i, work_ms, out)) for i in range(workers)]
    started = time.perf_counter()
    for process in processes:
        process.start()
    latencies: list[float] = []
    for _ in processes:
        while True:
            try:
                latencies += out.get(timeout=5)
                break
            except queue.Empty as empty:
                failed = [p for p in processes if p.exitcode not in (None, 0)]
                if failed:
                    raise SystemExit(f"a worker failed (exit {failed[0].exitcode}); see above") from empty
    for process in processes:
        process.join()
    seconds = time.perf_counter() - started
    catalog = Catalog.from_url(url)
    with catalog.tx.read() as session:
        per_version = session.execute(
            select(DecisionRow.sha256, func.count()).group_by(DecisionRow.sha256)
        ).all()
        done = session.scalar(select(func.count()).where(JobRow.state == JobState.DONE.value))
    catalog.close()
    duplicates = sum(n - 1 for _, n in per_version if n > 1)
    return Run(backend, workers, jobs, seconds, latencies, duplicates, jobs - int(done or 0))


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="a Postgres server URL; default: SQLite in a temp folder")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--work-ms", type=float, default=5.0)
    args = parser.parse_args()
    print(
        "| backend | workers | jobs | claims/s | claim p50 ms | p95 ms | max ms | duplicates | lost | wall s |"  # noqa: E501
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for workers in args.workers:
        if args.database_url:
            url = fresh_postgres(args.database_url, "dqd_queue_load")
            try:
                result = run(url, "postgres", args.jobs, workers, args.work_ms)
            finally:
                drop_postgres(args.database_url, url)
        else:
            with tempfile.TemporaryDirectory(prefix="dqd-queue-load-") as folder:
                url = f"sqlite:///{Path(folder) / 'dqd.db'}"
                result = run(url, "sqlite", args.jobs, workers, args.work_ms)
        lat = result.latencies
        print(
            f"| {result.backend} | {result.workers} | {result.jobs} | {len(lat) / result.seconds:.0f} | "
            f"{_percentile(lat, 50) * 1000:.1f} | {_percentile(lat, 95) * 1000:.1f} | "
            f"{max(lat, default=0) * 1000:.1f} | {result.duplicates} | {result.lost} | "
            f"{result.seconds:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
