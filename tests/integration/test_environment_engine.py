"""The engine's child and environment failures (issue 9, scenario 2), with real onnxruntime.

The parent checks the host lock before starting the child; these make that
check pass and the lock fail only in the child, as a lock folder removed
between the two would, to show the child uses ``host_lock`` from the
settings and hands the failure up as an environment failure, not as the
model's ``error`` result.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from dqd.domain import VariantSpec, WeightType
from dqd.errors import EnvironmentFailure
from dqd.hostinfo import detect_host
from dqd.pipeline import engine, quantize
from dqd.pipeline.engine import process_model
from dqd.pipeline.quantize import OutputDirError
from dqd.settings import load
from tests import models
from tests.fast import fast_settings


def test_the_child_locks_host_lock_and_raises_its_failure_as_the_environments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = models.save(models.matmul_heavy(hidden=32, layers=1), tmp_path / "m.onnx")
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings = fast_settings(
        tmp_path,
        **{
            "host_lock": str(blocker / "host.lock"),
            "benchmark.min_seconds": 0.05,
            "benchmark.max_seconds": 0.1,
        },
    )
    monkeypatch.delenv("DQD_HOST_LOCK", raising=False)
    monkeypatch.setattr(engine, "check_environment", lambda host_lock, output_dir: None)
    with pytest.raises(EnvironmentFailure) as caught:
        process_model(source, settings, host=detect_host())
    assert caught.value.setting == "host_lock" and str(blocker / "host.lock") in str(caught.value)


def test_an_output_dir_that_cannot_be_created_is_the_environments(tmp_path: Path) -> None:
    source = models.save(models.matmul_heavy(hidden=32, layers=1), tmp_path / "m.onnx")
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings = load(overrides={"output_dir": str(blocker / "out"), "host_lock": str(tmp_path / "lock")})
    with pytest.raises(EnvironmentFailure) as caught:
        process_model(source, settings, host=detect_host())
    assert caught.value.setting == "output_dir" and caught.value.exit_code == 3


def test_a_full_disk_while_quantizing_is_the_environments_not_a_failed_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = models.save(models.matmul_heavy(hidden=32, layers=1), tmp_path / "m.onnx")

    def disk_full(*_: object, **__: object) -> list[str]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(quantize, "_quantize", disk_full)  # ENOSPC cannot be had on demand otherwise
    with pytest.raises(OutputDirError) as caught:
        quantize.build_variant(
            source, VariantSpec(WeightType.U8U8), tmp_path / "out", ort_version="1", provenance={}
        )
    assert caught.value.setting == "output_dir" and "no space left" in str(caught.value)
