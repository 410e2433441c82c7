"""Preflight rules on small models built in code: one test per rule."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from onnx import TensorProto, helper

from dqd.domain import Outcome
from dqd.pipeline import inspect
from dqd.pipeline.inspect import FixableCause, preflight
from tests import models


def check(path: Path, **kwargs: bool) -> inspect.Preflight:
    result = preflight(path, **kwargs)
    assert result.reasons or result.outcome is None
    return result


def test_a_quantizable_model_goes_on_with_a_summary(tmp_path: Path) -> None:
    result = check(models.save(models.token_gather(vocab=50), tmp_path / "tok.onnx"))
    assert result.outcome is None
    summary = result.summary
    assert summary is not None
    assert summary.quantizable_top_level == {"Gather": 1, "MatMul": 1}
    assert summary.vocab_sizes == {"input_ids": 50}
    first = summary.inputs[0]
    assert (first.name, first.dtype, first.shape) == (
        "input_ids",
        "int64",
        ("batch", "sequence"),
    )
    assert summary.opsets == {"": models.OPSET} and summary.ir_version == 8
    assert summary.op_histogram["Gather"] == 1


def test_not_onnx_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00\xffthis is not a protobuf at all" * 10)
    result = check(path)
    assert result.outcome is Outcome.ERROR and "ONNX" in result.reasons[0]


def test_truncated_model_is_an_error(tmp_path: Path) -> None:
    full = models.save(models.matmul_heavy(hidden=64, layers=2), tmp_path / "full.onnx").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(full[: len(full) // 2])
    assert check(path).outcome is Outcome.ERROR


def test_old_opset_is_an_error_a_pre_fix_can_repair(tmp_path: Path) -> None:
    result = check(models.save(models.old_opset(), tmp_path / "old.onnx"))
    assert result.outcome is Outcome.ERROR and "opset 9" in result.reasons[0]
    assert result.fixable is FixableCause.OLD_OPSET


def test_fp16_weights_are_an_error_a_pre_fix_can_repair(tmp_path: Path) -> None:
    result = check(models.save(models.fp16_weights(), tmp_path / "half.onnx"))
    assert result.outcome is Outcome.ERROR and "compute in half precision (MatMul 1)" in result.reasons[0]
    assert result.fixable is FixableCause.HALF_PRECISION and result.precision == "fp16"


def test_half_precision_only_before_a_cast_needs_no_fix(tmp_path: Path) -> None:
    model = models.matmul_heavy(hidden=16, layers=1)
    x = model.graph.input[0]
    x.type.tensor_type.elem_type = TensorProto.FLOAT16  # fed FP16, cast to FP32 before any MatMul
    model.graph.node.insert(0, helper.make_node("Cast", ["x"], ["x32"], to=TensorProto.FLOAT))
    for node in model.graph.node[1:]:
        node.input[:] = ["x32" if name == "x" else name for name in node.input]
    result = check(models.save(model, tmp_path / "cast.onnx"))
    assert result.outcome is None and result.fixable is None and result.precision == "fp32"


def test_bfloat16_graph_inputs_are_an_error_no_pre_fix_repairs(tmp_path: Path) -> None:
    model = models.half_mlp(16, 1, elem=TensorProto.BFLOAT16)
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.BFLOAT16
    model.graph.node[0].attribute[0].i = TensorProto.BFLOAT16  # the entry Cast now a no-op
    result = check(models.save(model, tmp_path / "bf.onnx"))
    assert result.outcome is Outcome.ERROR and result.fixable is None
    assert "graph input/output 'x' is bfloat16" in result.reasons[0]


def test_external_data_outside_the_folder_is_refused(tmp_path: Path) -> None:
    path = models.save_with_escaping_external_data(
        models.matmul_heavy(hidden=16, layers=1), tmp_path / "m" / "x.onnx"
    )
    result = check(path)
    assert result.outcome is Outcome.ERROR and "outside the model's folder" in result.reasons[0]


def test_external_data_inside_the_folder_is_fine(tmp_path: Path) -> None:
    import onnx

    path = tmp_path / "ext.onnx"
    onnx.save_model(
        models.matmul_heavy(hidden=16, layers=1),
        str(path),
        save_as_external_data=True,
        location="ext.onnx.data",
        size_threshold=0,
    )
    result = check(path)
    assert result.outcome is None and result.summary is not None and result.summary.external_data


def test_over_2gb_without_external_data_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real 2 GB file is too big for a unit of CI; lower the limit instead.
    monkeypatch.setattr(inspect, "PROTOBUF_LIMIT_BYTES", 1000)
    result = check(models.save(models.matmul_heavy(hidden=64, layers=1), tmp_path / "big.onnx"))
    assert result.outcome is Outcome.ERROR and "external data" in result.reasons[0]


def test_ml_only_model_is_skipped(tmp_path: Path) -> None:
    result = check(models.save(models.ml_only(), tmp_path / "ml.onnx"))
    assert result.outcome is Outcome.SKIPPED and "no ai.onnx domain" in result.reasons[0]


def test_already_quantized_is_skipped(tmp_path: Path) -> None:
    result = check(models.save(models.already_quantized(), tmp_path / "q.onnx"))
    assert result.outcome is Outcome.SKIPPED and "already quantized" in result.reasons[0]
    assert "MatMulInteger" in result.reasons[0]


def test_nothing_quantizable_is_skipped(tmp_path: Path) -> None:
    result = check(models.save(models.nothing_quantizable(), tmp_path / "add.onnx"))
    assert result.outcome is Outcome.SKIPPED and "nothing quantizable" in result.reasons[0]


def test_ops_only_in_subgraphs_are_skipped_in_design_mode_and_point_at_thorough(tmp_path: Path) -> None:
    path = models.save(models.matmul_only_in_subgraphs(), tmp_path / "if.onnx")
    design = check(path)
    assert design.outcome is Outcome.SKIPPED
    assert "inside If/Loop/Scan" in design.reasons[0] and "--search thorough" in design.reasons[0]
    assert design.summary is not None and design.summary.quantizable_in_subgraphs == {"MatMul": 2}
    assert design.summary.control_flow == {"If": 1}
    assert check(path, reach_subgraphs=True).outcome is None


def test_constant_node_weights_count_as_quantizable(tmp_path: Path) -> None:
    result = check(models.save(models.constant_node_weights(), tmp_path / "c.onnx"))
    assert result.outcome is None and result.summary is not None
    assert result.summary.quantizable_top_level == {"MatMul": 2}
    assert result.summary.constant_node_weights == 2


def test_external_data_behind_a_link_is_an_error_that_says_how_to_fix_it(tmp_path: Path) -> None:
    """onnx's checker refuses a data file with several hard links (a `cp -l` copy) or a symlink."""
    model = models.save_with_external_data(
        models.matmul_heavy(hidden=16, layers=1), tmp_path / "a" / "m.onnx"
    )
    data = model.with_name("m.onnx.data")
    os.link(data, tmp_path / "snapshot.data")
    linked = preflight(model)
    assert linked.outcome is Outcome.ERROR
    assert "hard link" in linked.reasons[0] and "give the data file a single link" in linked.reasons[0]
    assert "dqd jobs retry" in linked.reasons[0]

    other = models.save_with_external_data(
        models.matmul_heavy(hidden=16, layers=1), tmp_path / "b" / "m.onnx"
    )
    target = other.with_name("m.onnx.data")
    target.rename(other.with_name("real.data"))  # inside the folder: only the link is wrong
    target.symlink_to("real.data")
    symlinked = preflight(other)
    assert symlinked.outcome is Outcome.ERROR and "replace the symbolic link" in symlinked.reasons[0]
