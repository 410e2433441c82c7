"""Time to decision of the thorough ladder, with and without screening, side by side.

One `dqd process --search thorough --json` call per configuration over the same
folder (the public corpus by default), in a fresh catalog and output folder each
time, the configurations alternating round by round so drift hits both alike.
``ladder.screen = false`` times every rung to the end and runs the playoff for
half the benchmark budget (dqd before issue 13 §3); ``true`` (the default)
screens rungs with a pilot beside FP32 and the leader, skips the gate of rungs
that cannot be selected, prunes per-channel twins of slow rungs and ends the
playoff once it has told the finalists apart. Printed: each run's wall time,
per-model seconds and decisions, the medians, and whether the decisions agree.

    python tests/perf/ladder_time.py [FOLDER] [--threads 1] [--rounds 2] [--without-python PYTHON]

``--without-python`` runs the configuration without screening under another
interpreter (a virtual environment holding what dqd depended on before, e.g.
ml_dtypes 0.7.0, whose import alone cost every model's child 1.1 s here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus"
DQD_MAIN = ["-c", "from dqd.cli import main; main()"]
CONFIGURATIONS = {"without screening": "false", "with screening": "true"}


def run(folder: Path, threads: int, screen: str, python: str) -> tuple[float, dict[str, dict[str, Any]]]:
    with tempfile.TemporaryDirectory(prefix="dqd-ladder-time-") as scratch:
        env = {**os.environ, "DQD_LADDER__SCREEN": screen, "PYTHONPATH": str(REPO)}
        started = time.perf_counter()
        done = subprocess.run(
            [
                python,
                *DQD_MAIN,
                "process",
                str(folder),
                "--search",
                "thorough",
                "--threads",
                str(threads),
                "--json",
            ],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"dqd process failed ({done.returncode}): {done.stderr[-2000:]}")
    results = {}
    for line in done.stdout.splitlines():
        record = json.loads(line)
        variant = (record.get("variant") or {}).get("name")
        results[Path(record["path"]).name] = {
            "outcome": record["outcome"],
            "variant": variant,
            "speedup": record.get("speedup"),
            "seconds": record.get("seconds"),
        }
    return wall, results


def decision(result: dict[str, Any]) -> str:
    return f"{result['outcome']} {result['variant'] or ''}".strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=CORPUS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--without-python", default=sys.executable)
    args = parser.parse_args()
    pythons = {"without screening": args.without_python, "with screening": sys.executable}
    walls: dict[str, list[float]] = {name: [] for name in CONFIGURATIONS}
    decisions: dict[str, list[dict[str, str]]] = {name: [] for name in CONFIGURATIONS}
    for index in range(args.rounds):
        order = list(CONFIGURATIONS.items())
        if index % 2:
            order.reverse()  # alternate which configuration goes first
        for name, screen in order:
            wall, results = run(args.folder, args.threads, screen, pythons[name])
            walls[name].append(wall)
            decisions[name].append({model: decision(r) for model, r in results.items()})
            print(f"round {index + 1}, {name}: {wall:.1f} s")
            for model, result in sorted(results.items()):
                speed = f" {result['speedup']:.2f}x" if result["speedup"] else ""
                print(f"    {model:28s} {decision(result):28s}{speed:8s} {result['seconds']:6.1f} s")
    print()
    medians = {name: statistics.median(values) for name, values in walls.items()}
    for name, value in medians.items():
        runs = [round(w, 1) for w in walls[name]]
        print(f"{name}: median {value:.1f} s over {len(runs)} run(s): {runs}")
    before, after = medians["without screening"], medians["with screening"]
    print(f"saved: {1 - after / before:.0%} of the wall time")
    every = [d for runs in decisions.values() for d in runs]
    same = all(d == every[0] for d in every)
    print("decisions: the same in every run" if same else "decisions DIFFER between runs:")
    if not same:
        for name, runs in decisions.items():
            for number, run_decisions in enumerate(runs, 1):
                print(f"    {name} run {number}: {run_decisions}")


if __name__ == "__main__":
    main()
