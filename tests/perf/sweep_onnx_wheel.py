"""Every model of the installed onnx wheel's test data through one `dqd process`.

The folders ``onnx/backend/test/data/{light,pytorch-converted,pytorch-operator,simple}``
hold 149 third-party models (ResNet50, SqueezeNet, VGG19, PyTorch-exported
layers) that dqd was not developed against. One `dqd process --json` call
decides them all in a fresh catalog; printed: outcomes by folder, the
pre-fixes used, errors grouped by cause, and the wall time.

    python tests/perf/sweep_onnx_wheel.py [--threads 1] [--folders light simple] [--keep DIR]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("light", "pytorch-converted", "pytorch-operator", "simple")
PREFIX_REASON = "pre-fix: "
DQD = [sys.executable, "-c", "from dqd.cli import main; main()"]


def wheel_data() -> Path:
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data"


def cause(reason: str) -> str:
    """An error's reason without the names and numbers that differ between models."""
    reason = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason)
    reason = re.sub(r"\d+(\.\d+)?", "N", reason)
    return reason[:150]


def sweep(folders: list[str], threads: int, workdir: Path) -> tuple[list[dict[str, Any]], float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")}
    env.update(
        DQD_DATABASE_URL=f"sqlite:///{workdir / 'dqd.db'}",
        DQD_OUTPUT_DIR=str(workdir / "out"),
        DQD_HOST_LOCK=str(workdir / "host.lock"),
        DQD_WATCH_DIR=str(workdir / "models"),
    )
    data = wheel_data()
    started = time.monotonic()
    done = subprocess.run(
        [*DQD, "process", "--json", "--threads", str(threads), *(str(data / folder) for folder in folders)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return lines, seconds, done.stderr


def folder_of(path: str) -> str:
    parts = Path(path).parts
    return next((part for part in parts if part in FOLDERS), "?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--folders", nargs="*", default=list(FOLDERS), choices=FOLDERS)
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (catalog, variants)")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="dqd-sweep-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results, seconds, stderr = sweep(args.folders, args.threads, workdir)
    if not results:
        print(stderr[-3000:])
        raise SystemExit("dqd process printed no result")

    by_folder: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    prefixes: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    skips: collections.Counter[str] = collections.Counter()
    examples: dict[str, str] = {}
    for result in results:
        by_folder[folder_of(result["path"])][result["outcome"]] += 1
        for reason in result["reasons"]:
            if reason.startswith(PREFIX_REASON):
                for fix in re.split(r"; then ", reason.removeprefix(PREFIX_REASON)):
                    prefixes[cause(PREFIX_REASON + fix.split(";")[0].split(" into ")[0])] += 1
        if result["outcome"] == "skipped":
            skips[cause(result["reasons"][0])] += 1
        if result["outcome"] == "error":
            key = cause(result["error"] or result["reasons"][0])
            errors[key] += 1
            examples.setdefault(key, Path(result["path"]).parent.name)

    outcomes = sorted({o for counts in by_folder.values() for o in counts})
    print(f"{len(results)} models, {seconds:.0f} s wall, {args.threads} thread(s); work folder {workdir}")
    print(f"{'folder':<20}" + "".join(f"{o:>16}" for o in outcomes) + f"{'total':>8}")
    for folder in args.folders:
        counts = by_folder.get(folder, collections.Counter())
        print(f"{folder:<20}" + "".join(f"{counts[o]:>16}" for o in outcomes) + f"{sum(counts.values()):>8}")
    print("\npre-fixes used:")
    for fix, count in prefixes.most_common():
        print(f"  {count:>4}  {fix}")
    print("\nskipped, by first reason:")
    for key, count in skips.most_common():
        print(f"  {count:>4}  {key}")
    print("\nerrors by cause:")
    for key, count in errors.most_common():
        print(f"  {count:>4}  {key}  (e.g. {examples[key]})")


if __name__ == "__main__":
    main()
