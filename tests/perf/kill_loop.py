"""The long kill -9 loop (on demand; CI runs a short one in tests/acceptance/test_kill_loop.py).

A real daemon over 50 tiny models is killed with SIGKILL at random moments
(10 times by default), then runs to the end; printed: kills (and how many hit
an engine child at work), models decided, lost, duplicate decisions, scratch
or partial files left in the output and publish folders, wall time.

    .venv/bin/python -m tests.perf.kill_loop                          # SQLite
    .venv/bin/python -m tests.perf.kill_loop --postgres URL           # a Postgres server (a fresh database)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.acceptance.kill_loop import run_kill_loop
from tests.perf.pgdb import fresh_postgres


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--postgres", help="a Postgres server URL; a fresh database is made on it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dqd-kill-loop-") as folder:
        workdir = Path(folder)
        sqlite = f"sqlite:///{workdir / 'dqd.db'}"
        url = fresh_postgres(args.postgres, "dqd_kill") if args.postgres else sqlite
        report = run_kill_loop(workdir, url, models=args.models, kills=args.kills, seed=args.seed)
    columns = ["catalog", "models", "kills (mid-job)", "decided", "lost", "duplicates", "leftovers"]
    print("| " + " | ".join([*columns, "published", "seconds"]) + " |")
    print("|---|---|---|---|---|---|---|---|---|")
    backend = "postgres" if args.postgres else "sqlite"
    print(
        f"| {backend} | {report.models} | {report.kills} ({report.killed_mid_job}) | {report.decided} | "
        f"{report.lost} | {report.duplicates} | {len(report.leftovers)} | {report.published} | "
        f"{report.seconds:.0f} |"
    )
    for failed in report.failed_jobs:
        print("failed:", failed)
    for leftover in report.leftovers:
        print("left:", leftover)


if __name__ == "__main__":
    main()
