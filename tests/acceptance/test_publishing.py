"""Issue 9, scenario 3: with publish_dir set, every path of every decided content is published, alone.

Real ``dqd run`` subprocesses on a real folder and catalog: the model's own
files go with it (never a neighbour's samples), a path holding already
decided content is published without a new job, and models decided before
``publish_dir`` was set are back-filled at start-up.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dqd.catalog import Catalog
from dqd.domain import JobState
from dqd.fileperms import shared_file_mode
from tests.acceptance.harness import Daemon, done_count, jobs_for, wait_for
from tests.acceptance.tiny import write_model

pytestmark = pytest.mark.slow


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_done(catalog: Catalog, *models: Path) -> None:
    shas = {digest(m) for m in models}
    wait_for(f"{len(shas)} models decided", lambda: done_count(catalog, shas) == len(shas) or None, 60)


def test_every_path_of_every_decided_model_is_published_with_its_own_files_only(
    tmp_path: Path, catalog: Catalog
) -> None:
    url = f"sqlite:///{tmp_path / 'dqd.db'}"
    publish = tmp_path / "publish"
    daemon = Daemon(tmp_path, url, DQD_PUBLISH_DIR=str(publish))
    watch = daemon.watch
    # A flat folder shared by two models' files: magika-v4's own, and minilm-l6's samples.
    magika = write_model(watch / "magika-v4.onnx", seed=40)
    (watch / "magika-v4.labels.txt").write_text("pdf\npng\n")
    np.savez(watch / "magika-v4.samples.npz", x=np.zeros((4, 64), np.float32))
    (watch / "magika-v4.dqd.toml").write_text('search = "design"\n')
    (watch / "minilm-l6.samples.npz").write_bytes(b"another model's samples")
    # A Triton layout: the version folder's files and the model folder's config.pbtxt.
    triton = write_model(watch / "a" / "1" / "model.onnx", seed=41)
    (watch / "a" / "config.pbtxt").write_text('name: "a"\n')
    (watch / "a" / "1" / "vocab.txt").write_text("hello\n")
    (watch / "a" / "notes.md").write_text("not the server's\n")
    try:
        daemon.start()
        wait_done(catalog, magika, triton)
        (host_class,) = {job.host_class for job in catalog.list_jobs()}
        out = publish / host_class
        # Scenario 8: each stage is logged with its duration (the job's stage column: test_worker.py).
        stages = {e["stage"] for e in daemon.events() if e.get("action") == "job_stage"}
        assert {"preflight", "pre-process", "quantize u8u8", "gate u8u8", "benchmark u8u8"} <= stages
        # Published means the model and then its provenance (written once the copy is in place).
        wait_for(
            "both published",
            lambda: (out / "magika-v4.onnx.dqd.json").exists() and (out / "a/1/model.onnx.dqd.json").exists(),
            20,
        )
        assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
            "magika-v4.labels.txt",
            "magika-v4.onnx",
            "magika-v4.onnx.dqd.json",
        ]
        assert (out / "a" / "config.pbtxt").read_text() == 'name: "a"\n'
        assert sorted(p.name for p in (out / "a" / "1").iterdir()) == [
            "model.onnx",
            "model.onnx.dqd.json",
            "vocab.txt",
        ]
        # Provenance beside each published file, agreeing with the catalog.
        for model, published in ((magika, out / "magika-v4.onnx"), (triton, out / "a/1/model.onnx")):
            record = json.loads(published.with_name(published.name + ".dqd.json").read_text())
            decision = catalog.latest_decision(digest(model), host_class)
            assert decision is not None
            assert (record["decision_id"], record["source_sha256"], record["host_class"]) == (
                decision.id,
                digest(model),
                host_class,
            )
            assert record["outcome"] == decision.outcome.value and record["is_original"] is (
                decision.variant_id is None
            )
            assert record["onnxruntime_version"] == decision.ort_version and record["frozen"] is False
            if not record["is_original"]:
                assert record["spec"]["weight_type"] and record["accuracy"]["passed"] is True
        assert not (out / "a" / "notes.md").exists()
        for published in (out / "magika-v4.onnx", out / "a" / "config.pbtxt", out / "a/1/model.onnx"):
            assert published.stat().st_mode & 0o777 == shared_file_mode(), published  # readable by a server

        # The same content at a second path: registered without a job, and published too.
        shutil.copytree(watch / "a", watch / "b")
        wait_for("b/1/model.onnx published", lambda: (out / "b/1/model.onnx").exists(), 20)
        assert (out / "b" / "config.pbtxt").exists()
        assert len(jobs_for(catalog, digest(triton))) == 1
        assert daemon.stop() == 0

        # Decided while publish_dir was unset: back-filled when the daemon starts with it.
        daemon.env.pop("DQD_PUBLISH_DIR")
        late = write_model(watch / "late.onnx", seed=42)
        daemon.start()
        wait_done(catalog, late)
        assert daemon.stop() == 0
        assert not (out / "late.onnx").exists()
        daemon.start(DQD_PUBLISH_DIR=str(publish))
        wait_for("late.onnx back-filled", lambda: (out / "late.onnx").exists(), 20)
        assert all(job.state is JobState.DONE for job in catalog.list_jobs())
        assert daemon.stop() == 0
    finally:
        daemon.kill()
