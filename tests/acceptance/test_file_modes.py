"""Report pages and variants: as readable as the umask allows, never world-writable.

Real ``dqd process`` and ``dqd report`` subprocesses under a chosen umask: a
web server or Triton running as another user must be able to read them.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.acceptance.harness import DQD, one_shot_env
from tests.acceptance.tiny import write_model


def _dqd(workdir: Path, umask: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = one_shot_env(workdir)
    return subprocess.run(
        [*DQD, *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=lambda: os.umask(umask),  # the child's umask is what is tested
    )


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("umask", "expected"), [(0o022, 0o644), (0o000, 0o664)], ids=["umask-022", "umask-000"]
)
def test_report_and_variant_files_follow_the_umask_and_are_never_world_writable(
    tmp_path: Path, umask: int, expected: int
) -> None:
    write_model(tmp_path / "models" / "tiny.onnx", seed=1)
    processed = _dqd(tmp_path, umask, "process", "models/tiny.onnx")
    assert processed.returncode == 0, processed.stderr
    reported = _dqd(tmp_path, umask, "report", "--out", "report")
    assert reported.returncode == 0, reported.stderr

    variants = _modes(tmp_path / "out")
    pages = _modes(tmp_path / "report")
    assert any(name.endswith(".onnx") for name in variants), variants
    assert "index.html" in pages, pages
    assert {oct(mode) for mode in {**variants, **pages}.values()} == {oct(expected)}, (variants, pages)
    folders = [tmp_path / "report", *(p for p in (tmp_path / "report").rglob("*") if p.is_dir())]
    assert all(not p.stat().st_mode & stat.S_IWOTH for p in folders)
