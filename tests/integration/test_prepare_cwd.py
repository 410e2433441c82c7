"""Pre-processing must not litter the current directory.

onnxruntime's symbolic shape inference saves ``sym_shape_infer_temp.onnx`` and
an external-data file into the cwd when it gives up (it does on most real
models); the daemon's cwd may be a user's folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dqd.pipeline.prepare import PREPROCESS_FULL, prepare_model
from tests.conftest import corpus_path


@pytest.mark.corpus
def test_failed_symbolic_inference_leaves_cwd_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "magika.onnx"
    shutil.copy(corpus_path("magika-v3_3.onnx"), model)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    prepared = prepare_model(Path(os.path.relpath(model)), tmp_path / "work")
    assert any(note.startswith(PREPROCESS_FULL + " failed") for note in prepared.notes)
    assert list(cwd.iterdir()) == []
    assert Path.cwd() == cwd
    assert prepared.path.is_file()
