"""A burst of 500 files dropped at once in a real daemon's folder (on demand).

50 distinct valid models, copies of them under other names, and junk (random
bytes, truncated models). Printed: files, listed, pending at the end, contents
decided, duplicate decisions, whether the daemon stayed up, and the seconds
from the last file written to every path in a final state.

    .venv/bin/python -m tests.perf.burst [--files 500 --valid 50]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.acceptance.burst import run_burst


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--valid", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dqd-burst-") as folder:
        report = run_burst(Path(folder), files=args.files, valid=args.valid, seed=args.seed)
    print(
        "| files | distinct valid | listed | pending | contents decided | duplicates | daemon up | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {report.files} | {report.distinct_valid} | {report.listed} | {report.pending} | "
        f"{report.decided_contents} | {report.duplicates} | {report.daemon_alive} | "
        f"{report.seconds_to_settle:.0f} |"
    )


if __name__ == "__main__":
    main()
