"""Issue 16 §3 with real ``dqd`` subprocesses: three requantizations of a folder, then retention.

Each pass decides every model again under another policy (the design default,
then two pinned specs, as a nightly run after a policy change would), so each
leaves variant files the next one no longer selects. One model is frozen at its
first decision. ``dqd gc --dry-run`` lists and removes nothing, ``dqd gc`` at
the default ``keep_days`` keeps everything (all recent), and the daemon's
daily sweep (every 2 s here, ``keep_days = 0``) removes exactly what the dry run
listed: every file left is one ``dqd best`` returns or the frozen one, and the
sources are untouched. The CI version has 2 models; ``-m large`` runs 20.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.harness import Daemon, wait_for
from tests.acceptance.tiny import write_model

pytestmark = pytest.mark.slow

PASSES = (
    {},  # the design search
    {"DQD_MODELS": json.dumps({"*.onnx": {"pin": {"weight_type": "U8S8", "per_channel": True}}})},
    {"DQD_MODELS": json.dumps({"*.onnx": {"pin": {"weight_type": "U8U8", "per_channel": True}}})},
)


def tree_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def variant_files(folder: Path) -> set[str]:
    return {str(f) for f in folder.rglob("*.onnx")}


@pytest.mark.parametrize(
    "models", [2, pytest.param(20, marks=pytest.mark.large)], ids=lambda n: f"{n}-models"
)
def test_three_requantizations_then_gc_keeps_what_ships(tmp_path: Path, url: str, models: int) -> None:
    daemon = Daemon(tmp_path, url)
    names = [f"m{i:02d}.onnx" for i in range(models)]
    for seed, name in enumerate(names):
        write_model(daemon.watch / name, seed=seed, hidden=128)
    sources = {name: hashlib.sha256((daemon.watch / name).read_bytes()).hexdigest() for name in names}
    first: dict[str, dict[str, Any]] = {}
    for index, env in enumerate(PASSES):
        done = daemon.cli("process", str(daemon.watch), "--json", **env)
        assert done.returncode == 0, done.stderr
        decided = [json.loads(line) for line in done.stdout.splitlines()]
        assert len(decided) == models
        if index == 0:
            first = {Path(d["path"]).name: d for d in decided}
        last = {Path(d["path"]).name: d for d in decided}

    frozen = daemon.cli("freeze", names[0], "--decision", str(first[names[0]]["decision_id"]))
    assert frozen.returncode == 0, frozen.stderr
    # What the frozen decision ships: its variant, or the source when it kept FP32.
    frozen_file = (first[names[0]]["variant"] or {}).get("output_path") or str(daemon.watch / names[0])

    def best() -> dict[str, str]:
        found = {}
        for name in names:
            answer = daemon.cli("best", name, "--json")
            assert answer.returncode == 0, answer.stderr
            found[name] = json.loads(answer.stdout)["load_path"]
        return found

    # What ships: the last pass's selections, the frozen model's first decision; `dqd best` says so after.
    shipped = {n: (d["variant"] or {}).get("output_path") or str(daemon.watch / n) for n, d in last.items()}
    shipped[names[0]] = frozen_file
    out = tmp_path / "out"
    before_bytes, before_files = tree_bytes(out), variant_files(out)

    dry = daemon.cli("gc", "--dry-run", "--json", DQD_RETENTION__KEEP_DAYS="0")
    assert dry.returncode == 0, dry.stderr
    listed = {r["path"] for r in json.loads(dry.stdout)["removed"]}
    assert listed, "three passes under three policies left nothing unselected"
    assert (tree_bytes(out), variant_files(out)) == (before_bytes, before_files)  # a dry run removes nothing
    assert not listed & set(shipped.values())

    recent = daemon.cli("gc", "--json")  # keep_days 7: everything here was written minutes ago
    assert recent.returncode == 0, recent.stderr
    assert json.loads(recent.stdout)["removed"] == []
    assert variant_files(out) == before_files

    # The daemon queues its own first jobs for contents `dqd process` decided (pinned as in the last
    # pass: they reuse its files); the sweep keeps a content's files while its job runs.
    daemon.start(
        **PASSES[-1],
        DQD_RETENTION__SWEEP="true",
        DQD_RETENTION__SWEEP_CRON="*/2 * * * * *",
        DQD_RETENTION__KEEP_DAYS="0",
        DQD_WATCH__RECONCILE_INTERVAL="300",
    )
    expected = before_files - {p for p in listed if p.endswith(".onnx")}
    try:
        wait_for(
            "the daily sweep to remove what the dry run listed", lambda: variant_files(out) == expected, 90
        )
    finally:
        daemon.stop()
    after_bytes, after_files = tree_bytes(out), variant_files(out)
    print(
        f"\n{models} models, 3 requantizations: output_dir {before_bytes} bytes in {len(before_files)} "
        f"variant files before gc, {after_bytes} bytes in {len(after_files)} after"
    )
    swept = [e for e in daemon.events() if e.get("action") == "gc_swept"]
    assert sum(e["bytes"] for e in swept) == before_bytes - after_bytes > 0
    assert best() == shipped  # what ships did not change, and it is all still there
    assert all(Path(path).is_file() for path in shipped.values())
    # Left: what the latest decisions select (the frozen model's included) and the frozen file.
    latest = {(d["variant"] or {}).get("output_path") for d in last.values()}
    assert after_files == {p for p in {*latest, frozen_file} if p and p.startswith(str(out))}
    assert {n: hashlib.sha256((daemon.watch / n).read_bytes()).hexdigest() for n in names} == sources
    # dqd show still lists a removed file's variant, and says its file is gone.
    removed = next(p for p in listed if p.endswith(".onnx"))
    owner = next(n for n in names if f"/{Path(n).stem}/" in removed)
    (line,) = [row for row in daemon.cli("show", owner).stdout.splitlines() if removed in row]
    assert line.rstrip().endswith("(missing here: removed by dqd gc, or the output volume is not mounted)")
