"""Daemon figures, on demand (not part of the test suite).

    .venv/bin/python tests/perf/bench_daemon.py [--database-url URL] [--models 100] [--latency-files 30]

Prints: file complete → queued latency p50/p95 with the native and the polling
observer; daemon overhead (queued → decision minus the engine's own time);
idle CPU and RSS; N small models end to end. Real ``dqd run`` subprocesses,
real engine with small benchmark budgets, one thread.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dqd.catalog import Catalog
from dqd.domain import JobState
from tests.acceptance.harness import Daemon, done_count, wait_for
from tests.acceptance.tiny import tiny_model_bytes


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def fmt(values: list[float]) -> str:
    p50, p95 = percentile(values, 50) * 1000, percentile(values, 95) * 1000
    return f"p50 {p50:.0f} ms, p95 {p95:.0f} ms (n={len(values)})"


def database(url: str | None, workdir: Path) -> str:
    return url or f"sqlite:///{workdir / 'dqd.db'}"


def latency(
    observer: str, files: int, url: str | None, seed0: int
) -> tuple[list[float], list[float], list[float]]:
    """Write files one at a time; queued latency, plus the per-job daemon overhead figures."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        db = database(url, workdir)
        daemon = Daemon(
            workdir,
            db,
            DQD_WATCH__OBSERVER=observer,
            DQD_WATCH__SETTLE_SECONDS="2",
            DQD_WATCH__POLL_INTERVAL="1",
        ).start()
        catalog = Catalog.from_url(db)
        lags, claim_waits, overheads = [], [], []
        try:
            for index in range(files):
                data = tiny_model_bytes(seed0 + index)
                digest = hashlib.sha256(data).hexdigest()
                (daemon.watch / f"lat{index}.onnx").write_bytes(data)
                closed = time.time()
                job = wait_for(
                    "queued",
                    lambda d=digest: next((j for j in catalog.list_jobs() if j.sha256 == d), None),
                    30,
                    0.02,
                )
                lags.append(job.created_at.timestamp() - closed)
                done = wait_for(
                    "done", lambda j=job.id: (x := catalog.get_job(j)).state is JobState.DONE and x, 60, 0.05
                )
                decision = catalog.latest_decision(digest, job.host_class)
                assert decision is not None and decision.seconds is not None and done.started_at is not None
                claim_waits.append((done.started_at - job.created_at).total_seconds())
                overheads.append((decision.created_at - job.created_at).total_seconds() - decision.seconds)
        finally:
            catalog.close()
            daemon.stop()
        return lags, claim_waits, overheads


def idle(url: str | None, seconds: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # Default intervals: settle 2 s, poll 2 s, heartbeat 10 s, idle worker looks every 2 s.
        daemon = Daemon(
            workdir,
            database(url, workdir),
            DQD_WATCH__SETTLE_SECONDS="2",
            DQD_WATCH__POLL_INTERVAL="2",
            DQD_WORKER__HEARTBEAT_SECONDS="10",
            DQD_WORKER__POLL_SECONDS="2",
        ).start()
        assert daemon.process is not None
        proc = psutil.Process(daemon.process.pid)
        time.sleep(3)  # start-up scan done
        before = proc.cpu_times()
        time.sleep(seconds)
        after = proc.cpu_times()
        rss = proc.memory_info().rss
        daemon.stop()
        cpu = (after.user + after.system - before.user - before.system) / seconds * 100
        return cpu, rss / 2**20


def end_to_end(count: int, url: str | None, concurrency: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        db = database(url, workdir)
        daemon = Daemon(workdir, db, DQD_WORKER__CONCURRENCY=str(concurrency)).start()
        catalog = Catalog.from_url(db)
        shas = set()
        started = time.time()
        for index in range(count):
            data = tiny_model_bytes(10_000 + index)
            shas.add(hashlib.sha256(data).hexdigest())
            (daemon.watch / "bulk" / f"m{index:03d}.onnx").parent.mkdir(parents=True, exist_ok=True)
            (daemon.watch / "bulk" / f"m{index:03d}.onnx").write_bytes(data)
        wait_for("all done", lambda: done_count(catalog, shas) == count or None, 60 + count * 5, 0.5)
        wall = time.time() - started
        engine = sum(d.seconds or 0 for d in catalog.recent_decisions(10_000) if d.sha256 in shas)
        jobs = [j for j in catalog.list_jobs() if j.sha256 in shas]
        assert len(jobs) == count and all(j.attempts == 1 for j in jobs), "duplicated or retried work"
        catalog.close()
        daemon.stop()
        return wall, engine


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file per run")
    parser.add_argument("--latency-files", type=int, default=30)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--idle-seconds", type=float, default=30)
    args = parser.parse_args()
    backend = "postgres" if args.database_url else "sqlite"
    print(
        f"backend {backend}; {psutil.cpu_count()} CPUs; settle 2 s, poll interval 1 s, "
        "benchmark budget 0.05-0.15 s, 1 thread"
    )
    for index, observer in enumerate(("native", "polling")):
        lags, waits, overheads = latency(observer, args.latency_files, args.database_url, 1000 * (index + 1))
        print(f"complete -> queued, {observer:7s}: {fmt(lags)}")
        if observer == "native":
            print(f"queued -> claimed (idle worker): {fmt(waits)}")
            print(f"daemon overhead (queued -> decision minus engine time): {fmt(overheads)}")
    cpu, rss = idle(args.database_url, args.idle_seconds)
    print(f"idle: {cpu:.2f}% of one CPU over {args.idle_seconds:.0f} s, RSS {rss:.0f} MiB")
    wall, engine = end_to_end(args.models, args.database_url, args.concurrency)
    print(
        f"{args.models} small models end to end (concurrency {args.concurrency}): {wall:.1f} s wall, "
        f"{wall / args.models:.2f} s/model; engine time {engine:.1f} s ({engine / args.models:.2f} s/model)"
    )


if __name__ == "__main__":
    main()
