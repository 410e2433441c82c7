"""Per-model settings reach the engine: nodes_to_exclude, pin, exclude (real onnxruntime, tiny models).

Library calls hand ``process_model`` a plan resolved from a sidecar's table; the ``dqd process``
cases resolve it from configuration sections and sidecars on disk as the daemon does.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from dqd.domain import EngineResult, Outcome, WeightType
from dqd.hostinfo import detect_host
from dqd.pipeline.engine import process_model
from dqd.pipeline.plan import resolve_plan
from dqd.serialize import catalog_details_json
from dqd.settings import ModelOverrides
from tests import models
from tests.integration.test_pipeline_cli import run_process
from tests.integration.test_pipeline_engine import fast_settings


def run(tmp_path: Path, overrides: ModelOverrides, search: str = "design") -> EngineResult:
    source = models.save(models.matmul_heavy(hidden=64, layers=3), tmp_path / "mlp.onnx")
    # Shorter timings than the engine tests: these check what was built, not which variant wins.
    quick = {"benchmark.warmup_runs": 1, "benchmark.min_seconds": 0.2, "benchmark.max_seconds": 1.0}
    settings = fast_settings(tmp_path, **quick)
    plan = resolve_plan(settings, overrides.model_dump(exclude_unset=True), "mlp.onnx", search_flag=search)
    return process_model(source, settings, host=detect_host(), plan=plan)


def node_ops(path: str | None) -> dict[str, str]:
    graph = onnx.load(str(path)).graph
    return {node.name: node.op_type for node in graph.node if node.name}


@pytest.mark.parametrize("search", ["design", "thorough"])
def test_nodes_to_exclude_stay_fp32_in_every_variant_and_in_its_spec(tmp_path: Path, search: str) -> None:
    result = run(tmp_path, ModelOverrides(nodes_to_exclude=["MatMul_1"]), search)

    assert result.outcome is not Outcome.ERROR, result.reasons
    quantized = [v for v in result.variants if v.spec.weight_type is not None]
    assert quantized, result.reasons
    for variant in quantized:
        assert variant.spec.nodes_to_exclude == ("MatMul_1",) and variant.spec.name.endswith("-x1")
        ops = node_ops(variant.output_path)
        assert ops["MatMul_1"] == "MatMul", ops  # left in FP32
        assert "MatMul_0" not in ops or ops["MatMul_0"] != "MatMul"  # its neighbours were quantized
        props = {p.key: p.value for p in onnx.load(str(variant.output_path)).metadata_props}
        assert json.loads(props["dqd.spec"])["nodes_to_exclude"] == ["MatMul_1"]
    assert catalog_details_json(result.details)["nodes_to_exclude"] == ["MatMul_1"]


def test_a_node_name_not_in_the_graph_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    result = run(tmp_path, ModelOverrides(nodes_to_exclude=["MatMul_7"]))

    assert result.outcome is not Outcome.ERROR, result.reasons
    reason = next(r for r in result.reasons if r.startswith("nodes_to_exclude:"))
    assert "no node named 'MatMul_7'" in reason and "'MatMul_0'" in reason  # names the ones that exist
    assert all(
        v.spec.nodes_to_exclude == () for v in result.variants
    )  # the spec claims nothing it did not do


def test_pin_builds_gates_times_and_selects_exactly_that_spec(tmp_path: Path) -> None:
    pin = {"weight_type": "U8S8", "per_channel": True}
    result = run(tmp_path, ModelOverrides(pin=pin))

    assert result.outcome is Outcome.QUANTIZED, result.reasons
    assert result.selected is not None
    assert (result.selected.weight_type, result.selected.per_channel) == (WeightType.U8S8, True)
    assert [v.spec for v in result.variants] == [result.selected]  # nothing else was tried
    assert result.reasons[0] == "selected u8s8-pc: pinned by per-model settings"
    assert any(r.startswith("U8S8-PC: passed the accuracy gate") for r in result.reasons)
    assert [b.step for b in result.benchmarks] == ["pinned", "pinned"]
    assert result.speedup is not None and result.speedup_ci is not None
    assert catalog_details_json(result.details)["decision"]["pinned"]["per_channel"] is True


def test_a_pin_that_fails_the_gate_is_still_shipped_with_a_warning(tmp_path: Path) -> None:
    overrides = ModelOverrides(pin={"weight_type": "U8U8"}, accuracy={"max_relative_l2": 1e-9})
    result = run(tmp_path, overrides)

    assert result.outcome is Outcome.QUANTIZED and result.selected is not None, result.reasons
    assert result.reasons[1].startswith("WARNING: pinned u8u8 failed the accuracy gate")


def test_dqd_process_honours_pin_fp32_and_exclude(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    models.save(models.matmul_heavy(hidden=32, layers=1), folder / "pinned" / "mlp.onnx")
    (folder / "pinned" / "mlp.dqd.toml").write_text('pin = "fp32"\n')
    models.save(models.matmul_heavy(hidden=32, layers=1, seed=1), folder / "skip" / "mlp.onnx")
    config = tmp_path / "dqd.toml"
    config.write_text('[models."skip/*"]\nexclude = true\n')

    done = run_process(tmp_path, str(folder), "--json", config=config)

    assert done.returncode == 0, done.stderr
    lines = {Path(line["path"]).parent.name: line for line in map(json.loads, done.stdout.splitlines())}
    assert lines["pinned"]["outcome"] == "kept_fp32" and lines["pinned"]["variant"] is None
    assert lines["pinned"]["reasons"] == ["pinned to FP32 by per-model settings"]
    assert lines["skip"]["outcome"] == "skipped" and lines["skip"]["error"] is None
    assert lines["skip"]["reasons"] == ["excluded by per-model settings (exclude = true)"]
    assert lines["skip"]["sha256"]  # recorded against the content like any outcome


def test_dqd_process_reports_a_bad_sidecar_pin_as_that_models_error(tmp_path: Path) -> None:
    bad = models.save(models.nothing_quantizable(), tmp_path / "bad.onnx")
    (tmp_path / "bad.dqd.toml").write_text('pin = { weight_type = "U4S4" }\n')
    good = models.save(models.ml_only(), tmp_path / "good.onnx")

    done = run_process(tmp_path, str(bad), str(good), "--json")

    assert done.returncode == 1
    first, second = (json.loads(line) for line in done.stdout.splitlines())
    assert first["outcome"] == "error" and str(tmp_path / "bad.dqd.toml") in first["error"]
    assert "weight_type 'U4S4'" in first["error"]
    assert second["outcome"] == "skipped"  # the next model still ran


def test_a_bad_pin_in_the_configuration_is_a_config_error(tmp_path: Path) -> None:
    model = models.save(models.ml_only(), tmp_path / "m.onnx")
    config = tmp_path / "dqd.toml"
    config.write_text('[models."team/*.onnx"]\npin = { weight_type = "U8S8", perchannel = true }\n')

    done = run_process(tmp_path, str(model), config=config)

    assert done.returncode == 2
    assert 'models."team/*.onnx".pin' in done.stderr and "unknown key 'perchannel'" in done.stderr
