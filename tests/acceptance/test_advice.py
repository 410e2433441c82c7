"""``dqd process`` tells a user what to do next: real samples, static quantization for a CNN (design mode)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from tests import models
from tests.acceptance.harness import DQD, one_shot_env

# A gate no quantized variant passes: the decision is kept_fp32 whatever the host measures.
STRICT_GATE = {"DQD_ACCURACY__MAX_RELATIVE_L2": "1e-9"}


def process(workdir: Path, model: Path) -> dict[str, Any]:
    env = one_shot_env(workdir, **STRICT_GATE)
    done = subprocess.run(
        [*DQD, "process", str(model), "--json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout.strip(), done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_gate_failure_on_synthetic_inputs_names_the_samples_file_and_a_cnn_gets_static_advice(
    tmp_path: Path,
) -> None:
    cnn = models.save(models.conv_heavy(), tmp_path / "models" / "cnn.onnx")

    result = process(tmp_path, cnn)

    assert result["outcome"] == "kept_fp32", result
    advice = [r for r in result["reasons"] if r.startswith("advice:")]
    samples = next(r for r in advice if "synthetic inputs" in r)
    assert "cnn.samples.npz" in samples and str(cnn.with_name("cnn.samples.npz")) in samples
    assert "one array per input: x" in samples
    static = next(r for r in advice if "Conv-heavy" in r)
    assert "quantize_static" in static and "calibration data" in static and "(3 Conv)" in static

    # With real samples the gate judged on them: no advice to provide what is already there.
    rng = np.random.default_rng(0)
    np.savez(cnn.with_name("cnn.samples.npz"), x=rng.standard_normal((2, 3, 16, 16)).astype(np.float32))
    again = process(tmp_path, cnn)
    assert again["outcome"] == "kept_fp32", again
    assert not any("synthetic inputs" in r for r in again["reasons"] if r.startswith("advice:"))
    assert any("Conv-heavy" in r for r in again["reasons"])
