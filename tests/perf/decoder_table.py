"""Decoders end to end: a GPT-2-small-shaped decoder (random weights) and the trained tiny one.

Both are built in code (:mod:`tests.decoders`), decided by one ``dqd process``
per search mode, and printed as a table: FP32 and every variant dqd timed,
with the decode step's latency and tokens/s (at ``--past`` cached tokens), the
prompt step's latency, file size, greedy next-token agreement with FP32 over
the judged generation (FP32's tokens fed to both), and dqd's pick.

    python tests/perf/decoder_table.py [--modes design thorough] [--threads 1] [--past 128] [--keep DIR]
                                       [--no-screen]

``--no-screen`` (``ladder.screen = false``) gates and times every rung of the
thorough ladder, so the table has every rung's agreement and speed; screening
leaves rungs that cannot be selected ungated (agreement "-").

GPT-2 small is about 650 MB in FP32 and its prompt step takes seconds at one
thread: a thorough run takes several minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests import decoders  # noqa: E402

DQD = [sys.executable, "-c", "from dqd.cli import main; main()"]


def build_models(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    gpt2 = folder / "gpt2-small-random.onnx"
    if not gpt2.exists():
        print("building the GPT-2-small-shaped decoder ...", flush=True)
        decoders.save_decoder(decoders.decoder(decoders.GPT2_SMALL), gpt2)
    shape, weights = decoders.trained_weights()
    tiny = decoders.save_decoder(decoders.decoder(shape, weights), folder / "tiny-trained.onnx")
    # Its prompt: real text it was not trained on, so greedy agreement is about meaningful choices.
    np.savez(folder / "tiny-trained.samples.npz", input_ids=decoders.held_out_ids(16)[None])
    return [gpt2, tiny]


def dqd(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DQD, *args], env=env, cwd=cwd, capture_output=True, text=True, check=False)


def rows_for(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per timed contender of the newest decision."""
    decision = detail["decisions"][0]["decision"]
    picked = detail["decisions"][0]["variant"] or "fp32"
    benchmarks = [b for b in detail["benchmarks"] if b["decision_id"] == decision["id"]]
    sizes = {v["id"]: v["size_bytes"] for v in detail["variants"]}
    agreement = {
        a["variant"]: a["metrics"].get("logits", {}).get("top1_agreement")
        for a in detail["accuracy"]
        if a["decision_id"] == decision["id"] and a["decisive"]
    }
    rows: dict[str, dict[str, Any]] = {}
    for b in benchmarks:
        if "playoff" in b["step"]:
            continue
        name = b["variant"]
        kind = b["step"].rsplit(":", 1)[-1].split("@")[0]
        row = rows.setdefault(
            name, {"variant": name, "size": sizes.get(b["variant_id"]), "agreement": agreement.get(name)}
        )
        row.setdefault(kind, b["median_ms"])  # FP32 is timed beside every candidate: its first timing
    return [dict(row, picked=(row["variant"] == picked)) for row in rows.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["design", "thorough"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--past", type=int, default=128)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--no-screen", action="store_true")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="dqd-decoders-"))
    models = build_models(work / "models")
    from dqd.hostinfo import this_host_class

    print(
        f"host class {this_host_class()}, {args.threads} thread(s), decode step at {args.past} cached tokens"
    )
    for mode in args.modes:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")}
        env.update(
            DQD_DATABASE_URL=f"sqlite:///{work / f'{mode}.db'}",
            DQD_OUTPUT_DIR=str(work / f"out-{mode}"),
            DQD_HOST_LOCK=str(work / "host.lock"),
            DQD_WATCH_DIR=str(work / "models"),
            DQD_BENCHMARK__DECODER_PAST_LENGTH=str(args.past),
            DQD_LADDER__SCREEN=str(not args.no_screen).lower(),
        )
        started = time.monotonic()
        done = dqd(
            ["process", "--json", "--search", mode, "--threads", str(args.threads), *map(str, models)],
            env,
            work,
        )
        print(f"\n== {mode}: {time.monotonic() - started:.0f} s (exit {done.returncode})")
        for path in models:
            shown = dqd(["show", path.name, "--json"], env, work)
            if shown.returncode != 0:
                print(f"{path.name}: {shown.stderr.strip()}")
                continue
            detail = json.loads(shown.stdout)
            outcome = detail["decisions"][0]["decision"]["outcome"]
            print(f"\n{path.name}: {outcome}")
            header = f"  {'variant':<24} {'decode ms':>9} {'tokens/s':>9} {'prompt ms':>10}"
            print(f"{header} {'MiB':>7} {'agree':>6}  pick")
            for row in rows_for(detail):
                decode = row.get("decode")
                rate = f"{1000.0 / decode:9.1f}" if decode else f"{'-':>9}"
                size = f"{row['size'] / 2**20:7.1f}" if row["size"] else f"{path.stat().st_size / 2**20:7.1f}"
                agree = f"{row['agreement']:6.3f}" if row["agreement"] is not None else f"{'-':>6}"
                prompt = f"{row['prompt']:10.2f}" if row.get("prompt") else f"{'-':>10}"
                mark = "  <-" if row["picked"] else ""
                print(f"  {row['variant']:<24} {decode or 0:9.2f} {rate} {prompt} {size} {agree}{mark}")
    print(f"\nwork folder {work}")


if __name__ == "__main__":
    main()
