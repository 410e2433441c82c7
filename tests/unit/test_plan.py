"""resolve_plan: every precedence combination, pure (no files, no clock)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from dqd.domain import SearchMode, WeightType
from dqd.pipeline.plan import InvalidSidecar, Source, resolve_plan
from dqd.pipeline.policy import LADDER_POLICY_VERSION, POLICY_VERSION
from dqd.settings import Settings


def settings(search: str = "design", **models: dict[str, Any]) -> Settings:
    return Settings.model_validate({"search": search, "models": models})


# Each layer may set the search mode or leave it alone: 2 x 3 x 3 x 3 combinations.
GLOBAL = ["design", "thorough"]
SECTION = [None, "design", "thorough"]
SIDECAR = [None, "design", "thorough"]
FLAG = [None, "design", "thorough"]


@pytest.mark.parametrize(
    ("global_", "section", "sidecar", "flag"), list(itertools.product(GLOBAL, SECTION, SIDECAR, FLAG))
)
def test_search_mode_precedence(
    global_: str, section: str | None, sidecar: str | None, flag: str | None
) -> None:
    models = {"*.onnx": {"search": section}} if section else {}
    plan = resolve_plan(
        settings(global_, **models), {"search": sidecar} if sidecar else None, "a/m.onnx", search_flag=flag
    )
    expected = flag or sidecar or section or global_
    where = (
        Source.FLAG if flag else Source.SIDECAR if sidecar else Source.MODELS if section else Source.SETTINGS
    )
    assert (plan.search, plan.sources["search"]) == (SearchMode(expected), where)
    thorough = plan.search is SearchMode.THOROUGH
    assert plan.policy_version == (LADDER_POLICY_VERSION if thorough else POLICY_VERSION)


def test_sections_apply_in_file_order_by_path_or_file_name_and_the_sidecar_wins() -> None:
    config = settings(
        **{
            "repo/*": {"accuracy": {"min_cosine_mean": 0.9}, "input_shapes": {"x": [1, 4]}},
            "m.onnx": {"accuracy": {"min_cosine_mean": 0.8, "max_relative_l2": 0.5}},
            "other/*": {"exclude": True},
        }
    )
    plan = resolve_plan(config, {"input_shapes": {"y": [2]}}, "repo/m.onnx")
    assert plan.accuracy.min_cosine_mean == 0.8 and plan.accuracy.max_relative_l2 == 0.5
    assert plan.accuracy.input_shapes == {"x": [1, 4], "y": [2]}  # dicts merge key by key
    assert plan.sources["accuracy"] is Source.MODELS and plan.sources["input_shapes"] is Source.SIDECAR
    assert not plan.exclude and plan.sources["exclude"] is Source.SETTINGS
    assert resolve_plan(config, None, "other/m.onnx").exclude


def test_global_input_shapes_and_thresholds_are_the_base() -> None:
    config = Settings.model_validate(
        {"accuracy": {"input_shapes": {"x": [8]}, "min_cosine_worst": 0.5}, "models": {"*": {}}}
    )
    plan = resolve_plan(config, {"accuracy": {"min_cosine_worst": 0.7}}, "m.onnx")
    assert plan.accuracy.input_shapes == {"x": [8]}
    assert plan.accuracy.min_cosine_worst == 0.7
    assert plan.accuracy.min_cosine_mean == config.accuracy.min_cosine_mean


def test_a_pin_replaces_an_earlier_one_whole_and_its_nodes_join_the_models() -> None:
    config = settings(**{"*.onnx": {"pin": {"weight_type": "U8S8", "per_channel": True}}})
    sidecar = {"pin": {"weight_type": "U8U8", "nodes_to_exclude": ["b", "a"]}, "nodes_to_exclude": ["a", "c"]}
    plan = resolve_plan(config, sidecar, "m.onnx")
    assert plan.pin is not None and plan.pin.weight_type is WeightType.U8U8
    assert plan.pin.per_channel is False  # not merged with the section's pin
    assert plan.pin.nodes_to_exclude == () and plan.nodes_to_exclude == ("a", "c", "b")
    assert not plan.pin_fp32 and plan.sources["pin"] is Source.SIDECAR


def test_pin_fp32() -> None:
    plan = resolve_plan(settings(), {"pin": "FP32"}, "m.onnx")
    assert plan.pin_fp32 and plan.pin is None


def test_an_invalid_sidecar_names_its_key() -> None:
    with pytest.raises(InvalidSidecar) as caught:
        resolve_plan(settings(), {"accuracy": {"min_cosine_men": 0.9}}, "m.onnx")
    assert caught.value.key.startswith("accuracy")
    with pytest.raises(InvalidSidecar, match="exclude"):
        resolve_plan(settings(), {"exclude": "perhaps"}, "m.onnx")


def test_fingerprint_changes_with_what_decides_and_only_with_that() -> None:
    base = resolve_plan(settings(), None, "m.onnx")
    assert resolve_plan(settings(), None, "other/m.onnx").fingerprint() == base.fingerprint()
    assert resolve_plan(settings(), {}, "m.onnx").fingerprint() == base.fingerprint()
    changed = [
        resolve_plan(settings("thorough"), None, "m.onnx"),
        resolve_plan(settings(), {"exclude": True}, "m.onnx"),
        resolve_plan(settings(), {"pin": "fp32"}, "m.onnx"),
        resolve_plan(settings(), {"nodes_to_exclude": ["n"]}, "m.onnx"),
        resolve_plan(settings(), {"accuracy": {"min_cosine_mean": 0.5}}, "m.onnx"),
        resolve_plan(settings(), {"input_shapes": {"x": [1]}}, "m.onnx"),
    ]
    prints = {plan.fingerprint() for plan in changed}
    assert base.fingerprint() not in prints and len(prints) == len(changed)
