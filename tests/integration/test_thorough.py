"""``search = "thorough"`` end to end on small models built in code, with real onnxruntime.

The models are chosen so the ladder has something to find: per-tensor
weights that break a MatMul layer while per-channel ones keep it, a stateful
LSTM judged over a stream, matmuls reachable only inside If branches, and a
Conv-heavy network that dynamic quantization should leave alone.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dqd.domain import EngineResult, HostInfo, Outcome, WeightType
from dqd.hostinfo import detect_host
from dqd.pipeline.engine import process_model
from dqd.pipeline.ladder_rules import RULES_REVISION, RULES_VERSION
from dqd.serialize import catalog_details_json
from dqd.settings import Settings
from tests import models
from tests.fast import fast_settings


def thorough_settings(tmp_path: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "search": "thorough",
        "benchmark.max_seconds": 1.5,
        "limits.timeout_seconds": 300,
        "limits.memory_mb": 4096,
    }
    return fast_settings(tmp_path, **{**base, **overrides})


def ladder(result: EngineResult) -> dict[str, Any]:
    record: dict[str, Any] = catalog_details_json(result.details)["decision"]
    return record


def rung(result: EngineResult, name: str) -> dict[str, Any]:
    return next(r for r in ladder(result)["rungs"] if r["variant"] == name)


def tried(result: EngineResult) -> list[str]:
    return [r["variant"] for r in ladder(result)["rungs"] if r["status"] == "tried"]


def spread_columns(hidden: int = 384, seed: int = 7) -> onnx.ModelProto:
    """MatMul whose weight columns span four orders of magnitude, rescaled after a Relu.

    ``y = MatMul(Relu(MatMul(x, W * s)) * (1 / s), V)`` equals the model
    without ``s``: per-tensor weight scales flush the small columns to zero,
    per-channel scales keep them.  The rescaling Mul is not quantized.
    """
    rng = np.random.default_rng(seed)
    scales = np.logspace(-4, 0, hidden).astype(np.float32)
    w = (rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)).astype(np.float32) * scales
    v = (rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="spread"),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Mul", ["r", "inv_scales"], ["u"]),
        helper.make_node("MatMul", ["u", "v"], ["y"], name="mix"),
    ]
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array((1.0 / scales).astype(np.float32), "inv_scales"),
        numpy_helper.from_array(v, "v"),
    ]
    graph = helper.make_graph(
        nodes,
        "spread_columns",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def streaming_lstm(features: int = 32, hidden: int = 64, seed: int = 11) -> onnx.ModelProto:
    """One LSTM step per call with ``h0``/``c0`` → ``hn``/``cn`` carried by the caller, and a MatMul head."""
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)

    nodes = [
        helper.make_node(
            "LSTM", ["x", "W", "R", "B", "", "h0", "c0"], ["Y", "hn", "cn"], hidden_size=hidden, name="lstm"
        ),
        helper.make_node("Squeeze", ["hn", "axis0"], ["last"]),
        helper.make_node("MatMul", ["last", "head"], ["logits"], name="head"),
    ]
    inits = [
        numpy_helper.from_array(weight(1, 4 * hidden, features), "W"),
        numpy_helper.from_array(weight(1, 4 * hidden, hidden), "R"),
        numpy_helper.from_array(np.zeros((1, 8 * hidden), np.float32), "B"),
        numpy_helper.from_array(np.array([0], np.int64), "axis0"),
        numpy_helper.from_array(weight(hidden, 8), "head"),
    ]
    state = [1, "batch", hidden]
    graph = helper.make_graph(
        nodes,
        "streaming_lstm",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["steps", "batch", features]),
            helper.make_tensor_value_info("h0", TensorProto.FLOAT, state),
            helper.make_tensor_value_info("c0", TensorProto.FLOAT, state),
        ],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 8]),
            helper.make_tensor_value_info("hn", TensorProto.FLOAT, state),
            helper.make_tensor_value_info("cn", TensorProto.FLOAT, state),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def all_ops(model: onnx.ModelProto) -> list[str]:
    found = []
    stack = [model.graph]
    while stack:
        graph = stack.pop()
        for node in graph.node:
            found.append(node.op_type)
            stack.extend(a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH)
    return found


def test_per_channel_rescues_a_matmul_that_per_tensor_weights_break(tmp_path: Path) -> None:
    source = models.save(spread_columns(), tmp_path / "spread.onnx")
    result = process_model(
        source, thorough_settings(tmp_path, **{"accuracy.synthetic_batch": 16}), host=detect_host()
    )

    assert result.search_mode == "thorough" and result.policy_version == f"ladder/{RULES_REVISION}"
    assert rung(result, "u8s8-pc")["gate_passed"] is True
    # A per-tensor rung was gated on every host order, and failed; one too slow to be selected
    # (U8U8 behind U8S8 on a VNNI host) is not gated at all.
    gated = [n for n in ("u8s8", "u8u8") if n in tried(result) and not rung(result, n)["screened_out"]]
    assert gated, ladder(result)["rungs"]
    for name in gated:
        assert rung(result, name)["gate_passed"] is False, rung(result, name)["gate_reason"]
    if result.outcome is Outcome.QUANTIZED:
        assert result.selected is not None and result.selected.per_channel
    else:  # on a host where even the per-channel variant is not faster, FP32 stays
        assert result.outcome in (Outcome.KEPT_FP32, Outcome.OPTIMIZED_FP32), result.reasons
    # The record says which host rules applied and why the ladder stopped.
    assert ladder(result)["rules"]["version"] == RULES_VERSION
    assert ladder(result)["host_class"] == detect_host().host_class
    assert ladder(result)["stop_reason"].startswith("ladder complete")


def test_lstm_model_is_judged_over_a_stream_and_gets_an_lstm_only_rung(tmp_path: Path) -> None:
    source = models.save(streaming_lstm(), tmp_path / "rnn.onnx")
    # Every rung gated, whatever its pilot timing: screening would skip gating a rung that cannot be
    # selected (on a loaded host, all of them), and this test is about how the gate judges.
    settings = thorough_settings(tmp_path, **{"accuracy.sequence_length": 12, "ladder.screen": False})
    result = process_model(source, settings, host=detect_host())

    assert result.outcome is not Outcome.ERROR, result.reasons
    assert ladder(result)["stateful"] == {"pairs": [["h0", "hn"], ["c0", "cn"]], "sequence_length": 12}
    decisive = [a for a in result.accuracy if a.decisive]
    assert decisive and all(a.reason.startswith("over a stream of 12 calls") for a in decisive)
    assert all(
        a.reason and not a.reason.startswith("over a stream") for a in result.accuracy if not a.decisive
    )
    # LSTM weights are int8 whatever weight_type says: one LSTM-only rung, the other pruned as identical.
    lstm_rungs = [
        r for r in ladder(result)["rungs"] if r["status"] == "tried" and r["spec"]["op_types"] == ["LSTM"]
    ]
    assert len(lstm_rungs) == 1
    skipped = [r for r in ladder(result)["rungs"] if r["status"] == "skipped"]
    assert any("LSTM weights are always int8" in r["reason"] for r in skipped)
    lstm_file = next(v for v in result.variants if v.spec.op_types == ("LSTM",))
    ops = all_ops(onnx.load(str(lstm_file.output_path)))
    assert "DynamicQuantizeLSTM" in ops and "MatMulInteger" not in ops


def test_matmuls_inside_if_branches_are_reached_with_enable_subgraph(tmp_path: Path) -> None:
    source = models.save(models.matmul_only_in_subgraphs(hidden=256), tmp_path / "if.onnx")
    result = process_model(source, thorough_settings(tmp_path), host=detect_host())

    assert result.outcome is not Outcome.SKIPPED and result.outcome is not Outcome.ERROR, result.reasons
    quantized = [v for v in result.variants if v.spec.weight_type is not None]
    dynamic = [v for v in quantized if not v.spec.weight_type.blockwise]
    assert dynamic and all(v.spec.extra_options == {"EnableSubgraph": True} for v in dynamic)
    assert all(v.spec.name.endswith("-sub") for v in dynamic)
    ops = all_ops(onnx.load(str(dynamic[0].output_path)))
    assert ops.count("MatMulInteger") == 2 and "MatMul" not in ops
    # MatMulNBitsQuantizer walks the branches by itself, without EnableSubgraph.
    for blockwise in (v for v in quantized if v.spec.weight_type.blockwise and v.output_path):
        assert all_ops(onnx.load(str(blockwise.output_path))).count("MatMulNBits") == 2
    if result.selected is not None and result.selected.weight_type is not None:
        assert result.selected.extra_options == {"EnableSubgraph": True}


def test_conv_heavy_model_keeps_conv_in_fp32_unless_it_measured_faster(tmp_path: Path) -> None:
    source = models.save(models.conv_heavy(), tmp_path / "cnn.onnx")
    result = process_model(source, thorough_settings(tmp_path), host=detect_host())

    assert result.outcome is not Outcome.ERROR, result.reasons
    selected = result.selected
    if selected is not None and selected.weight_type is not None:
        chosen = rung(result, selected.name)
        assert "Conv" not in chosen["reaches"] or (
            chosen["gate_passed"]
            and chosen["speedup_ci"][0] >= 1.0 + catalog_details_json(result.details)["decision"]["margin"]
        )
    else:
        advice = [r for r in result.reasons if r.startswith("advice:")]
        assert advice and "static quantization with calibration data" in advice[0]
    # Once a Conv rung measured slower than FP32, no other Conv rung is tried (whichever rule
    # pruned it: conv-slow, its per-channel twin's loss, U8S8 Conv needing a U8U8 win).
    in_order = [r for r in ladder(result)["rungs"] if r["status"] == "tried"]
    slow = next(
        (i for i, r in enumerate(in_order) if "Conv" in r["reaches"] and r["speedup_ci"][1] < 1.0), None
    )
    if slow is not None:
        later = [r["variant"] for r in in_order[slow + 1 :] if "Conv" in r["reaches"]]
        assert not later, f"tried after {in_order[slow]['variant']} measured Conv slower: {later}"


def test_the_time_budget_stops_the_ladder_after_the_first_rung(tmp_path: Path) -> None:
    source = models.save(models.matmul_heavy(hidden=128, layers=2), tmp_path / "mlp.onnx")
    settings = thorough_settings(tmp_path, **{"ladder.time_budget_seconds": 0.001})
    result = process_model(source, settings, host=detect_host())

    assert result.outcome is not Outcome.ERROR, result.reasons
    assert tried(result) == ["fp32-opt"]
    assert ladder(result)["stop_reason"].startswith("time budget")
    assert any(line.startswith("ladder stopped: time budget") for line in result.reasons)


@pytest.mark.parametrize("search", ["design", "thorough"])
def test_search_mode_is_recorded(tmp_path: Path, search: str) -> None:
    source = models.save(models.nothing_quantizable(), tmp_path / "add.onnx")
    result = process_model(source, thorough_settings(tmp_path, search=search), host=detect_host())
    assert result.outcome is Outcome.SKIPPED
    assert result.search_mode == search


def test_design_mode_is_unchanged_by_the_ladder(tmp_path: Path) -> None:
    source = models.save(spread_columns(hidden=128), tmp_path / "spread.onnx")
    result = process_model(source, thorough_settings(tmp_path, search="design"), host=detect_host())
    assert result.search_mode == "design" and result.policy_version.startswith("design")
    assert [v.spec.weight_type for v in result.variants] == [WeightType.U8U8, WeightType.U8S8][
        : len(result.variants)
    ]
    assert "ladder" not in str(
        catalog_details_json(result.details).get("decision", {}).get("policy_version", "")
    )


def _as_host_class(host_class: str) -> HostInfo:
    """This host, whose timings are real, under another class's ladder rules."""
    return replace(detect_host(), host_class=host_class)


def test_matmulnbits_rungs_are_built_gated_and_timed_where_each_matmul_sees_one_row(tmp_path: Path) -> None:
    source = models.save(models.matmul_heavy(hidden=256, layers=2), tmp_path / "mlp.onnx")
    settings = thorough_settings(tmp_path, **{"accuracy.synthetic_batch": 1})
    result = process_model(source, settings, host=_as_host_class("x86_64-avx2"))

    assert result.outcome is not Outcome.ERROR, result.reasons
    assert ladder(result)["traits"]["matmul_rows"] == 1
    assert ladder(result)["rules"]["blockwise_max_rows"] == 4
    q4 = rung(result, "q4-b128")
    assert q4["status"] == "tried" and q4["spec"]["weight_type"] == "Q4" and q4["spec"]["block_size"] == 128
    assert q4["speedup_ci"] is not None and q4["size_bytes"] > 0
    built = next(v for v in result.variants if v.spec.name == "q4-b128")
    assert "MatMulNBits" in all_ops(onnx.load(str(built.output_path)))
    # Every MatMulNBits rung is either tried or pruned by a measurement, never by shape.
    blockwise = [r for r in ladder(result)["rungs"] if r["variant"].startswith("q")]
    assert len(blockwise) == 4 and not [r for r in blockwise if r.get("rule") == "blockwise-rows"]


def test_matmulnbits_rungs_are_pruned_by_shape_on_avx2_where_every_matmul_sees_many_rows(
    tmp_path: Path,
) -> None:
    source = models.save(models.matmul_heavy(hidden=128, layers=2), tmp_path / "mlp.onnx")
    settings = thorough_settings(tmp_path, **{"accuracy.synthetic_batch": 64})
    avx2 = process_model(source, settings, host=_as_host_class("x86_64-avx2"))

    assert ladder(avx2)["traits"]["matmul_rows"] == 64
    pruned = [r for r in ladder(avx2)["rungs"] if r.get("rule") == "blockwise-rows"]
    assert [r["variant"] for r in pruned] == ["q4-b128", "q4-b32", "q8-b128", "q8-b32"]
    assert "at least 64 activation rows" in pruned[0]["reason"]
    assert not [v for v in avx2.variants if v.spec.weight_type in (WeightType.Q4, WeightType.Q8)]
