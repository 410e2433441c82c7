"""Per-model settings from disk: configuration globs, then the sidecar beside the model (``plan_for``).

``resolve_plan``'s precedence is tested without files in ``test_plan.py``; this
is its shell: reading the sidecar, and what a bad one means for the daemon
(logged, left out) and for ``dqd process`` (the model's error).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dqd.domain import SearchMode
from dqd.pipeline.plan import Source, plan_for
from dqd.settings import Settings
from dqd.sidecar import SidecarError, load_sidecar


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
    plan = plan_for(config, tmp_path, "repo/m.onnx", strict=True)
    assert plan.search is SearchMode.DESIGN and plan.sources["search"] is Source.SIDECAR
    assert (plan.accuracy.min_cosine_mean, plan.accuracy.max_relative_l2) == (0.9, 0.5)
    assert plan.accuracy.input_shapes == {"x": [1, 8]}
    other = plan_for(config, tmp_path, "other/m.onnx", strict=True)
    assert other.search is SearchMode.DESIGN and other.sources["search"] is Source.SETTINGS


@pytest.mark.parametrize("text", ["exclude = 'perhaps'\n", "not toml ["])
def test_the_daemon_leaves_an_invalid_sidecar_out_and_dqd_process_refuses_it(
    tmp_path: Path, text: str
) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "m.dqd.toml").write_text(text)
    config = settings(**{"m.onnx": {"search": "thorough"}})
    kept = plan_for(config, tmp_path, "m.onnx", strict=False)
    assert (kept.search, kept.exclude) == (SearchMode.THOROUGH, False)
    with pytest.raises(SidecarError) as caught:
        plan_for(config, tmp_path, "m.onnx", strict=True)
    assert caught.value.path == tmp_path / "m.dqd.toml"


def test_a_bad_sidecar_pin_names_its_key_and_the_daemon_keeps_the_configuration(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "m.dqd.toml").write_text('pin = { weight_type = "U8S8", perchannel = true }\n')
    config = settings(**{"*.onnx": {"nodes_to_exclude": ["MatMul_1"]}})
    with pytest.raises(SidecarError) as caught:
        plan_for(config, tmp_path, "m.onnx", strict=True)
    assert caught.value.path == tmp_path / "m.dqd.toml"
    assert "pin: " in str(caught.value) and "unknown key 'perchannel'" in str(caught.value)
    kept = plan_for(
        config, tmp_path, "m.onnx", strict=False
    )  # the daemon goes on with the configuration's word
    assert kept.pin is None and kept.nodes_to_exclude == ("MatMul_1",)

    (tmp_path / "m.dqd.toml").write_text('pin = { weight_type = "U8S8", per_channel = true }\n')
    pin = plan_for(config, tmp_path, "m.onnx", strict=True).pin
    assert pin is not None and pin.per_channel


def test_no_sidecar_is_an_empty_table(tmp_path: Path) -> None:
    assert load_sidecar(tmp_path / "m.onnx") == {}
