"""Issue 9, scenario 6: `dqd process` results are found, listed and never published, and a
one-shot run at another thread count does not replace the daemon's decision for `dqd best`."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.domain import JobState
from tests.acceptance.harness import DQD, FAST_ENGINE, Daemon, wait_for
from tests.acceptance.tiny import write_model

pytestmark = pytest.mark.slow


class Cli:
    """`dqd` subprocesses sharing one catalog, watched folder and output folder."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.url = f"sqlite:///{workdir / 'dqd.db'}"
        self.env = {
            **FAST_ENGINE,
            "DQD_DATABASE_URL": self.url,
            "DQD_WATCH_DIR": str(workdir / "models"),
            "DQD_OUTPUT_DIR": str(workdir / "out"),
            "DQD_HOST_LOCK": str(workdir / "host.lock"),
        }

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")}
        return subprocess.run(
            [*DQD, *args],
            cwd=self.workdir,
            env={**clean, **self.env, **env},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def ok(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        ran = self(*args, **env)
        assert ran.returncode == 0, (args, ran.stdout, ran.stderr)
        return ran


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()


# The model and its provenance record (issue 16): nothing of the models outside the watched folder.
PUBLISHED_INSIDE = {("sub", "inside.onnx"), ("sub", "inside.onnx.dqd.json")}


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_processed_models_are_listed_found_by_name_and_stem_and_never_published(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    dqd = Cli(tmp_path)
    outside = write_model(tmp_path / "elsewhere" / "tinyout.onnx", seed=11)
    inside = write_model(tmp_path / "models" / "sub" / "inside.onnx", seed=12)
    dup_a = write_model(tmp_path / "a" / "dup.onnx", seed=13)
    dup_b = write_model(tmp_path / "b" / "dup.onnx", seed=14)
    outside_bytes = outside.read_bytes()
    dqd.ok("process", "elsewhere/tinyout.onnx", "models/sub/inside.onnx", "a/dup.onnx", "b/dup.onnx")

    listed = {m["path"]: m for m in json.loads(dqd.ok("models", "--json").stdout)}
    assert set(listed) == {str(outside), "sub/inside.onnx", str(dup_a), str(dup_b)}
    assert all(m["decisions"] for m in listed.values()), listed

    for ref in ("tinyout.onnx", "tinyout", str(outside)):
        shown = json.loads(dqd.ok("show", ref, "--json").stdout)
        assert shown["sha256"] == sha_of(outside) and shown["path"]["path"] == str(outside), ref
    for ref in ("inside", "sub/inside.onnx", str(inside)):
        assert json.loads(dqd.ok("show", ref, "--json").stdout)["sha256"] == sha_of(inside), ref
    best = dqd.ok("best", "tinyout").stdout.strip()
    assert Path(best).is_file(), best
    ambiguous = dqd("show", "dup")
    assert ambiguous.returncode == 2 and str(dup_a) in ambiguous.stderr and str(dup_b) in ambiguous.stderr

    # A daemon publishing into pub/ takes up the watched folder's model, never the outside ones.
    daemon = Daemon(tmp_path, dqd.url, DQD_PUBLISH_DIR=str(tmp_path / "pub"))
    daemons.append(daemon)
    daemon.start()
    catalog = Catalog.from_url(dqd.url)
    try:
        wait_for(
            "the watched model's job",
            lambda: [j for j in catalog.list_jobs(states=[JobState.DONE]) if j.sha256 == sha_of(inside)],
            60,
        )
        daemon.stop()
        queued = {job.sha256 for job in catalog.list_jobs()}
        assert queued == {sha_of(inside)}, "a model outside the watched folder was queued"
        assert catalog.known_paths().keys() == {"sub/inside.onnx"}
    finally:
        catalog.close()
    published = [p.relative_to(tmp_path / "pub") for p in (tmp_path / "pub").rglob("*") if p.is_file()]
    assert published and all(p.parts[1:] in PUBLISHED_INSIDE for p in published), published
    assert outside.read_bytes() == outside_bytes


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_a_one_shot_run_at_one_thread_does_not_replace_the_daemons_decision_at_two(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    dqd = Cli(tmp_path)
    model = write_model(tmp_path / "models" / "m.onnx", seed=21)
    daemon = Daemon(tmp_path, dqd.url, DQD_BENCHMARK__THREADS="2")
    daemons.append(daemon)
    daemon.start()
    catalog = Catalog.from_url(dqd.url)
    try:
        wait_for("the daemon's decision", lambda: catalog.list_jobs(states=[JobState.DONE]), 60)
        daemon.stop()
        (job,) = catalog.list_jobs()
        daemons_decision = catalog.latest_decision(sha_of(model), job.host_class)
        assert daemons_decision is not None and daemons_decision.threads == 2
    finally:
        catalog.close()

    dqd.ok("process", "models/m.onnx", "--threads", "1")
    (row,) = _rows(dqd.ok("models", "--csv").stdout)
    assert row["PATH"] == "m.onnx" and row["THREADS"] == "1"  # the latest decision, with its count

    at_two = json.loads(dqd.ok("best", "m.onnx", "--json", DQD_BENCHMARK__THREADS="2").stdout)
    assert at_two["decision_id"] == daemons_decision.id and at_two["threads"] == 2
    assert at_two["at_configured_threads"] is True and at_two["note"] is None
    plain = dqd.ok("best", "m", DQD_BENCHMARK__THREADS="2")
    assert plain.stdout.strip() == at_two["load_path"] and plain.stderr == ""

    at_four = json.loads(dqd.ok("best", "m", "--json", DQD_BENCHMARK__THREADS="4").stdout)
    assert at_four["at_configured_threads"] is False and at_four["threads"] == 1
    assert "4 threads" in at_four["note"]
    noted = dqd.ok("best", "m", DQD_BENCHMARK__THREADS="4")
    assert noted.stdout.strip() == at_four["load_path"] and "timed at 1" in noted.stderr
