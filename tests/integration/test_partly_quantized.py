"""Issue 11 §4: a model that already holds quantized parts gets what is still float quantized
(real onnxruntime); one with nothing float left stays skipped."""

from __future__ import annotations

from pathlib import Path

import onnx

from dqd.domain import Outcome
from dqd.hostinfo import detect_host
from dqd.pipeline.engine import process_model
from dqd.pipeline.inspect import preflight
from tests import models
from tests.fast import fast_settings

NOTE = "already partly quantized (DequantizeLinear): only the ops with float weights left (MatMul 1)"


def test_preflight_counts_only_the_float_work_left(tmp_path: Path) -> None:
    partly = preflight(models.save(models.partly_quantized(), tmp_path / "p.onnx"))
    assert partly.outcome is None and partly.summary is not None
    assert partly.summary.quantizable_top_level == {"MatMul": 1}  # the QDQ-fed MatMul is not float work
    assert partly.reasons[0].startswith(NOTE)

    full = preflight(models.save(models.partly_quantized(float_left=False), tmp_path / "f.onnx"))
    assert full.outcome is Outcome.SKIPPED
    assert full.reasons == ("already quantized (DequantizeLinear): nothing float is left to quantize",)


def test_the_float_matmul_is_quantized_and_the_qdq_one_kept(tmp_path: Path) -> None:
    source = models.save(models.partly_quantized(), tmp_path / "p.onnx")
    result = process_model(source, fast_settings(tmp_path), host=detect_host())

    assert result.outcome in (Outcome.QUANTIZED, Outcome.KEPT_FP32), result.reasons
    assert any(r.startswith(NOTE) for r in result.reasons)
    built = [v for v in result.variants if v.output_path is not None]
    assert built, result.variants
    for variant in built:
        ops = [n.op_type for n in onnx.load(str(variant.output_path)).graph.node]
        assert "DequantizeLinear" in ops and "MatMul" in ops  # the QDQ pair, as it was
        assert "MatMulInteger" in ops or "MatMulIntegerToFloat" in ops  # the float MatMul, quantized
