"""A model over 2 GB end to end: ``dqd process`` on a generated stack of large MatMuls (issue 17).

Generates ``layers`` MatMuls of ``width`` x ``width`` float32 weights (35 x 4096 x 4096:
2.24 GiB) saved with one external-data file, runs the real ``dqd process`` on it with the
default limits, and prints the outcome, the wall time, the peak memory of the dqd process
tree (sum of proportional set sizes, sampled every second: a forked leaf's shared pages are
not counted twice; also the largest single RSS), the peak of each step ``dqd process`` reports
on stderr (so a regression names the step that grew), and the disk the outputs took.

    .venv/bin/python -m tests.perf.big_model [--layers 35] [--width 4096] [--keep DIR]
    .venv/bin/python -m tests.perf.big_model --model ../shared/corpus/minilm-l6.onnx --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from dqd.modelfile import own_data_file
from tests.models import matmul_heavy, save_with_external_data

DQD = [sys.executable, "-c", "from dqd.cli import main; main()"]


def write_model(path: Path, layers: int, width: int) -> int:
    """The model at ``path`` with its weights in ``<name>.data``; its total size in bytes."""
    own_data_file(path).unlink(missing_ok=True)  # onnx appends to an existing data file
    save_with_external_data(matmul_heavy(hidden=width, layers=layers), path)
    return sum(f.stat().st_size for f in path.parent.iterdir())


def tree_memory(root: psutil.Process) -> tuple[int, int, list[str]]:
    """(sum of PSS, largest RSS, each process's share) over ``root`` and its descendants (the
    engine child and its forked leaves are all descendants of the dqd process)."""
    total, largest, shares = 0, 0, []
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0, []
    for proc in processes:
        rollup = _smaps_rollup(proc.pid)
        total += rollup.get("Pss", 0)
        largest = max(largest, rollup.get("Rss", 0))
        shares.append(f"pid {proc.pid} {rollup.get('Pss', 0) / 2**30:.2f}")
    return total, largest, shares


def _smaps_rollup(pid: int) -> dict[str, int]:
    """/proc/PID/smaps_rollup in bytes (one kernel walk; psutil's full smaps parse costs far more)."""
    found = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    found[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except OSError:
        pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=35)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temporary folder)")
    parser.add_argument("--model", type=Path, help="measure this model (copied with its data) instead")
    parser.add_argument("--threads", type=int, help="benchmark.threads (default: dqd's)")
    parser.add_argument("--search", choices=["design", "thorough"], default="design")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="dqd-big-"))
    models = work / "models"
    models.mkdir(parents=True, exist_ok=True)
    if args.model:
        model = models / args.model.name
        for file in args.model.parent.glob(args.model.name + "*"):  # the model, its data, its samples
            shutil.copy(file, models / file.name)
        for file in args.model.parent.glob(args.model.stem + ".samples*"):
            shutil.copy(file, models / file.name)
        size = sum(f.stat().st_size for f in models.glob(args.model.name + "*"))
        print(f"model: {args.model}, {size / 2**20:.0f} MiB with its data")
    else:
        model = models / "big.onnx"
        size = write_model(model, args.layers, args.width)
        shape = f"{args.layers} MatMuls of {args.width}x{args.width}"
        print(f"model: {shape}, {size / 2**30:.2f} GiB with its data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")}
    env.update(
        DQD_DATABASE_URL=f"sqlite:///{work / 'dqd.db'}",
        DQD_WATCH_DIR=str(models),
        DQD_OUTPUT_DIR=str(work / "out"),
        DQD_HOST_LOCK=str(work / "host.lock"),
        **({"DQD_BENCHMARK__THREADS": str(args.threads)} if args.threads else {}),
    )
    started = time.monotonic()
    process = subprocess.Popen(
        [*DQD, "process", str(model), "--json", "--search", args.search],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak_pss, peak_rss = 0, 0
    step = "start"
    steps: dict[str, tuple[int, int, list[str]]] = {}  # step -> peak tree PSS, largest RSS, shares
    done = threading.Event()

    def watch() -> None:
        nonlocal peak_pss, peak_rss
        root = psutil.Process(process.pid)
        while not done.is_set():
            pss, rss, shares = tree_memory(root)
            peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
            seen = steps.get(step, (0, 0, []))
            if pss > seen[0]:
                steps[step] = (pss, max(seen[1], rss), shares)
            time.sleep(1.0)  # the kernel walks every page table per sample: not too often

    def follow() -> None:
        nonlocal step
        assert process.stderr is not None
        for line in process.stderr:
            step = line.split(": ", 1)[-1].strip()[:60] or step
            print(f"  {time.monotonic() - started:6.0f} s  {line.rstrip()}", file=sys.stderr)

    watcher = threading.Thread(target=watch, daemon=True)
    follower = threading.Thread(target=follow, daemon=True)
    watcher.start()
    follower.start()
    stdout = process.stdout.read() if process.stdout else ""
    process.wait()
    done.set()
    watcher.join()
    follower.join()
    wall = time.monotonic() - started
    result = json.loads(stdout.splitlines()[-1]) if stdout.strip() else {}
    out_bytes = sum(f.stat().st_size for f in (work / "out").rglob("*") if f.is_file())
    target = 2.5 * size + 300 * 2**20
    print(
        f"exit {process.returncode}; outcome {result.get('outcome')}; variant "
        f"{(result.get('variant') or {}).get('name')}; speed-up {result.get('speedup')}"
    )
    if result.get("error"):
        print(f"error: {result['error']}")
    print(
        f"wall {wall:.0f} s; peak tree PSS {peak_pss / 2**30:.2f} GiB "
        f"(target 2.5 x S + 300 MB = {target / 2**30:.2f} GiB); largest single RSS {peak_rss / 2**30:.2f} GiB"
    )
    print("peak per step (tree PSS / largest RSS, GiB):")
    for name, (pss, rss, shares) in steps.items():
        print(f"  {pss / 2**30:5.2f} / {rss / 2**30:5.2f}  {name}")
        print(f"                 PSS by process: {', '.join(shares)}")
    print(f"disk: outputs {out_bytes / 2**30:.2f} GiB under {work / 'out'}")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
