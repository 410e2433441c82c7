"""dqd.pipeline.readable: the view a model with a name that is not UTF-8 is read through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dqd.pipeline.quantize import OutputDirError
from dqd.pipeline.readable import is_utf8, readable_path
from tests import models

LATIN1 = os.fsdecode(b"caf\xe9.onnx")


def test_a_utf8_path_is_read_as_it_is_and_nothing_is_written(tmp_path: Path) -> None:
    source = tmp_path / "café.onnx"
    source.write_bytes(b"x")
    with readable_path(source, tmp_path / "scratch") as readable:
        assert readable == source
    assert not (tmp_path / "scratch").exists()


def test_a_latin1_name_is_viewed_under_a_utf8_name_with_its_data_copied_then_removed(tmp_path: Path) -> None:
    built = models.save_with_external_data(models.matmul_heavy(hidden=8, layers=1), tmp_path / "m.onnx")
    source = built.rename(tmp_path / LATIN1)
    with readable_path(source, tmp_path / "out") as readable:
        assert is_utf8(readable) and readable.name == "caf_xe9.onnx"
        assert readable.read_bytes() == source.read_bytes()
        data = readable.parent / "m.onnx.data"
        assert not data.is_symlink() and data.stat().st_nlink == 1  # what onnx's checker insists on
        assert data.read_bytes() == (tmp_path / "m.onnx.data").read_bytes()
    assert list((tmp_path / "out").iterdir()) == []


def test_an_output_volume_that_refuses_the_view_is_the_environments_fault(tmp_path: Path) -> None:
    source = tmp_path / LATIN1
    source.write_bytes(b"x")
    blocker = tmp_path / "out"
    blocker.write_bytes(b"a file where the output folder should be")
    with pytest.raises(OutputDirError), readable_path(source, blocker / "m"):
        pass


def test_only_paths_that_are_not_utf8_need_a_view() -> None:
    assert is_utf8(Path("é/a\\b.onnx")) and not is_utf8(Path(LATIN1))
