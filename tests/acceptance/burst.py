"""A burst of files dropped at once in a real daemon's folder: mostly copies and junk, some real models.

CI drops 80 files (tests/acceptance/test_burst.py); tests/perf/burst.py drops
500 (50 distinct valid models) on demand.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

from dqd.catalog import Catalog
from tests.acceptance.harness import Daemon, decisions_per_sha, wait_for
from tests.acceptance.tiny import tiny_model_bytes


@dataclass(frozen=True)
class BurstReport:
    files: int
    distinct_valid: int
    listed: int
    pending: int  # listed without a final state at the end
    decided_contents: int  # contents with a decision
    duplicates: int  # decisions beyond the first for a content
    daemon_alive: bool
    seconds_to_settle: float  # from the last file written to every path in a final state


def run_burst(workdir: Path, *, files: int, valid: int, seed: int = 0) -> BurstReport:
    """``valid`` distinct models, each also copied under other names, and junk (random bytes,
    truncated models) for the rest, written as fast as the disk takes them."""
    rng = random.Random(seed)
    daemon = Daemon(workdir, f"sqlite:///{workdir / 'dqd.db'}")
    blobs = [tiny_model_bytes(2000 + i, hidden=32) for i in range(valid)]
    copies = (files - valid) // 2
    plan: list[bytes] = [*blobs]
    plan += [rng.choice(blobs) for _ in range(copies)]
    for index in range(files - len(plan)):
        junk = rng.randbytes(rng.randint(0, 4096)) if index % 2 else rng.choice(blobs)[: rng.randint(1, 2000)]
        plan.append(junk)
    try:
        daemon.start()
        (daemon.watch / "burst").mkdir(parents=True, exist_ok=True)
        for index, data in enumerate(plan):
            (daemon.watch / "burst" / f"f{index:04d}.onnx").write_bytes(data)
        written = time.monotonic()
        models = wait_for("every file to reach a final state", lambda: _settled(daemon, files), 120 + files)
        settled = time.monotonic() - written
        catalog = Catalog.from_url(daemon.database_url)
        try:
            counts = decisions_per_sha(catalog)
        finally:
            catalog.close()
        alive = daemon.process is not None and daemon.process.poll() is None
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    shas = {str(model["sha256"]) for model in models if model["sha256"]}
    return BurstReport(
        files=files,
        distinct_valid=valid,
        listed=len(models),
        pending=sum(1 for model in models if not model["decisions"] and not model["refused_reason"]),
        decided_contents=sum(1 for sha in shas if counts.get(sha)),
        duplicates=sum(max(0, n - 1) for n in counts.values()),
        daemon_alive=alive,
        seconds_to_settle=settled,
    )


def _settled(daemon: Daemon, files: int) -> list[dict[str, object]] | None:
    shown = daemon.cli("models", "--json", "--limit", "100000")
    if shown.returncode != 0:
        return None
    models = json.loads(shown.stdout)
    final = [m for m in models if m["decisions"] or m["refused_reason"]]
    return models if len(models) == files and len(final) == files else None
