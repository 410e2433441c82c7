"""Per-model settings: configuration globs, then the sidecar beside the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from dqd.settings import Settings
from dqd.sidecar import SidecarError, overrides_for, resolve_overrides


def settings(**models: dict[str, object]) -> Settings:
    return Settings.model_validate({"models": models})


def test_globs_apply_in_order_and_sidecar_wins(tmp_path: Path) -> None:
    config = settings(
        **{
            "repo/*": {"search": "thorough", "accuracy": {"min_cosine_mean": 0.9}},
            "*.onnx": {"accuracy": {"max_relative_l2": 0.5}},
        }
    )
    model = tmp_path / "repo" / "m.onnx"
    model.parent.mkdir()
    model.write_bytes(b"x")
    (tmp_path / "repo" / "m.dqd.toml").write_text('search = "design"\n[input_shapes]\nx = [1, 8]\n')
    merged = overrides_for(config, tmp_path, "repo/m.onnx")
    assert merged.search == "design"
    assert merged.accuracy == {"min_cosine_mean": 0.9, "max_relative_l2": 0.5}
    assert merged.input_shapes == {"x": [1, 8]}
    assert overrides_for(config, tmp_path, "other/m.onnx").search is None


def test_invalid_sidecar_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "m.dqd.toml").write_text("exclude = 'perhaps'\n")
    assert (
        overrides_for(settings(**{"m.onnx": {"search": "thorough"}}), tmp_path, "m.onnx").search == "thorough"
    )
    (tmp_path / "m.dqd.toml").write_text("not toml [")
    assert overrides_for(settings(), tmp_path, "m.onnx").exclude is False


def test_a_bad_sidecar_pin_is_an_error_for_resolve_and_ignored_by_the_daemon(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "m.dqd.toml").write_text('pin = { weight_type = "U8S8", perchannel = true }\n')
    config = settings(**{"*.onnx": {"nodes_to_exclude": ["MatMul_1"]}})
    with pytest.raises(SidecarError) as caught:
        resolve_overrides(config, tmp_path, "m.onnx")
    assert caught.value.path == tmp_path / "m.dqd.toml"
    assert "pin: " in str(caught.value) and "unknown key 'perchannel'" in str(caught.value)
    kept = overrides_for(config, tmp_path, "m.onnx")  # the daemon goes on with the configuration's word
    assert kept.pin is None and kept.nodes_to_exclude == ["MatMul_1"]

    (tmp_path / "m.dqd.toml").write_text('pin = { weight_type = "U8S8", per_channel = true }\n')
    assert resolve_overrides(config, tmp_path, "m.onnx").pin == {"weight_type": "U8S8", "per_channel": True}
