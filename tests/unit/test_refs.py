"""How the CLI names models in the catalog: relative inside the watched folder, absolute outside."""

from __future__ import annotations

from pathlib import Path

import pytest

from dqd.cli.refs import catalog_path, model_ref


def test_inside_is_relative_and_outside_is_absolute(tmp_path: Path) -> None:
    watch = tmp_path / "models"
    (watch / "bert" / "1").mkdir(parents=True)
    assert catalog_path(watch / "bert" / "1" / "model.onnx", watch) == "bert/1/model.onnx"
    assert catalog_path(tmp_path / "elsewhere" / "m.onnx", watch) == f"{tmp_path}/elsewhere/m.onnx"
    assert catalog_path(tmp_path / "models-old" / "m.onnx", watch).startswith("/")  # a sibling, not inside


def test_a_watched_folder_reached_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert catalog_path(real / "m.onnx", tmp_path / "link") == "m.onnx"


def test_names_stems_and_watched_relative_paths_pass_unchanged(tmp_path: Path) -> None:
    watch = tmp_path / "models"
    assert model_ref(str(watch / "a" / "m.onnx"), watch) == "a/m.onnx"
    assert model_ref("/srv/other/m.onnx", watch) == "/srv/other/m.onnx"
    for ref in ("m.onnx", "m", "a/m.onnx", "6960c6b2980e"):
        assert model_ref(ref, watch) == ref


def test_a_relative_path_to_a_watched_file_from_the_folder_above(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new user's `dqd process models` then `dqd best models/m.onnx`, run in the folder above `models`.
    watch = tmp_path / "models"
    (watch / "a").mkdir(parents=True)
    (watch / "a" / "m.onnx").write_bytes(b"x")
    (tmp_path / "elsewhere.onnx").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert model_ref("models/a/m.onnx", watch) == "a/m.onnx"
    assert model_ref("elsewhere.onnx", watch) == "elsewhere.onnx"  # outside: a name, as given
    assert model_ref("models/a/gone.onnx", watch) == "models/a/gone.onnx"  # no such file: as given
