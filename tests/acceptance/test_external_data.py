"""Issue 17: the external-data path end to end on every CI run, and published data that cannot collide.

The size above which dqd writes tensors to a ``.data`` file is lowered to a
few kilobytes (``limits.external_data_mb``), so a small model takes the path a
2 GB one takes: pre-processing, quantization, accuracy, benchmark, publishing
and ``dqd best``. A pin makes the decision ship a quantized variant, whose data
file is named by its content: publishing a new version never writes onto the
data file the older published model still reads.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import onnxruntime as ort
import pytest

from dqd.catalog import Catalog
from dqd.modelfile import content_sha256, model_files
from tests import models
from tests.acceptance.harness import Daemon, decisions_per_sha, wait_for

pytestmark = pytest.mark.slow


def _version(folder: Path, seed: int) -> Path:
    model = models.matmul_heavy(hidden=64, layers=2, seed=seed)
    return models.save_with_external_data(model, folder / "m.onnx")


def _drop(version: Path, watch: Path) -> str:
    """Move a model and its data into the watched folder, data first (as a careful copy script would)."""
    watch.mkdir(parents=True, exist_ok=True)
    digest = content_sha256(version)
    os.replace(version.with_name("m.onnx.data"), watch / "m.onnx.data")
    os.replace(version, watch / "m.onnx")
    return digest


def _published_pair(publish: Path, digest_of_data: str | None = None) -> tuple[Path, Path] | None:
    found = [p for p in publish.rglob("m.onnx") if p.is_file()]
    if not found:
        return None
    files = model_files(found[0])
    if len(files) != 2:
        return None
    if digest_of_data is not None and _sha(files[1]) == digest_of_data:
        return None
    return files[0], files[1]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _runs(model: Path) -> None:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (only,) = session.get_inputs()
    import numpy as np

    session.run(None, {only.name: np.zeros([d if isinstance(d, int) else 1 for d in only.shape], np.float32)})


def test_an_external_data_model_is_decided_published_and_republished_without_collision(
    tmp_path: Path, url: str, catalog: Catalog
) -> None:
    config = tmp_path / "dqd.toml"
    config.write_text('[models."*.onnx"]\npin = { weight_type = "U8S8" }\n')
    publish = tmp_path / "published"
    daemon = Daemon(
        tmp_path,
        url,
        DQD_CONFIG=str(config),
        DQD_PUBLISH_DIR=str(publish),
        DQD_LIMITS__EXTERNAL_DATA_MB="0.01",
    ).start()
    try:
        first = _drop(_version(tmp_path / "v1", seed=1), daemon.watch)
        wait_for("the first version decided", lambda: decisions_per_sha(catalog).get(first), 120)
        old_model, old_data = wait_for("the first version published", lambda: _published_pair(publish), 60)
        assert old_data.name.endswith(".data") and old_data.name != "m.onnx.data"  # a variant's own data
        _runs(old_model)
        old_bytes = _sha(old_data)

        second = _drop(_version(tmp_path / "v2", seed=2), daemon.watch)
        wait_for("the second version decided", lambda: decisions_per_sha(catalog).get(second), 120)
        new_model, new_data = wait_for(
            "the second version published", lambda: _published_pair(publish, old_bytes), 60
        )
        assert new_data.name != old_data.name
        assert old_data.exists() and _sha(old_data) == old_bytes  # what the old model read is untouched
        _runs(new_model)
        record = json.loads(new_model.with_name("m.onnx.dqd.json").read_text())
        assert (record["source_sha256"], record["spec"]["weight_type"]) == (second, "U8S8")
        assert record["variant_sha256"] == content_sha256(new_model)  # the published pair is the variant

        best = daemon.cli("best", "m.onnx")
        assert best.returncode == 0, best.stderr
        chosen = Path(best.stdout.strip())
        assert len(model_files(chosen)) == 2
        _runs(chosen)
        decision = catalog.latest_decision(second, catalog.list_jobs()[0].host_class)
        assert decision is not None and decision.outcome.value == "quantized"
        # The quantizer's raw advice to pre-process (dqd does) does not reach the daemon's JSON log.
        assert "Please consider to run pre-processing" not in daemon.log_text()
    finally:
        daemon.kill()
