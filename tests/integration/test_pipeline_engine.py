"""process_model end to end on small models built in code, with real onnxruntime and small budgets."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from dqd.domain import InputSource, Outcome, WeightType
from dqd.hostinfo import detect_host
from dqd.pipeline.engine import process_model
from dqd.pipeline.quantize import OutputDirError
from dqd.serialize import catalog_details_json
from dqd.settings import Settings
from tests import models
from tests.fast import fast_settings as shared_fast_settings

ENGINE_LIMITS: dict[str, Any] = {"limits.timeout_seconds": 120, "limits.memory_mb": 4096}


def fast_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return shared_fast_settings(tmp_path, **{**ENGINE_LIMITS, **overrides})


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_matmul_heavy_model_is_quantized_u8u8_first_with_provenance(tmp_path: Path) -> None:
    """Which step wins is timing (U8U8 measured 0.94x on a loaded 2-core host): the golden replay
    proves the policy; this proves the flow, the files and their provenance."""
    source = models.save(models.matmul_heavy(), tmp_path / "models" / "team" / "mlp.onnx")
    before = (digest(source), source.stat().st_mtime_ns)
    settings = fast_settings(tmp_path, **{"accuracy.synthetic_batch": 16})
    progress: list[str] = []

    result = process_model(
        source, settings, host=detect_host(), model_root=tmp_path / "models", progress=progress.append
    )

    assert result.outcome is Outcome.QUANTIZED, result.reasons
    assert result.selected is not None and result.selected.weight_type in (WeightType.U8U8, WeightType.U8S8)
    assert result.speedup_ci is not None and result.speedup_ci[0] >= 1.0 + settings.benchmark.margin
    assert (digest(source), source.stat().st_mtime_ns) == before  # the source is never touched
    assert result.variants[0].spec.weight_type is WeightType.U8U8  # U8U8 first
    variant = next(v for v in result.variants if v.spec == result.selected)
    output = Path(variant.output_path or "")
    assert output.parent == tmp_path / "out" / "team" / "mlp" / result.sha256[:12]
    assert output.name == f"{result.selected.name}-{result.selected.key(result.ort_version)}.onnx"
    assert variant.size_bytes is not None and variant.size_bytes < source.stat().st_size / 2
    props = {p.key: p.value for p in onnx.load(str(output)).metadata_props}
    assert props["dqd.source_sha256"] == result.sha256
    assert json.loads(props["dqd.spec"])["weight_type"] == result.selected.weight_type.value
    assert props["dqd.onnxruntime_version"] == result.ort_version
    steps = [b.spec.name if b.spec else "fp32" for b in result.benchmarks]
    assert steps[:2] == ["fp32", "u8u8"] and steps[-1] == result.selected.name
    assert result.benchmarks[0].peak_rss_bytes and result.benchmarks[1].latency.rounds >= 3
    assert result.accuracy[0].input_source is InputSource.SYNTHETIC and result.accuracy[0].decisive
    assert "quantizing u8u8" in progress and "preflight" in progress
    assert not list(output.parent.glob(".dqd-*"))  # no scratch left behind

    again = process_model(source, settings, host=detect_host(), model_root=tmp_path / "models")
    assert again.variants[0].output_path == result.variants[0].output_path
    assert any("reused" in note for note in again.variants[0].notes)


def test_conv_heavy_model_measures_both_steps(tmp_path: Path) -> None:
    source = models.save(models.conv_heavy(), tmp_path / "cnn.onnx")
    result = process_model(source, fast_settings(tmp_path), host=detect_host())
    assert result.outcome is not Outcome.ERROR, result.reasons
    steps = [b.step for b in result.benchmarks if b.spec is not None]
    if result.outcome is Outcome.KEPT_FP32:
        assert steps == ["u8u8", "u8s8"]
        assert result.reasons[0].startswith("kept FP32: ")
        assert any(r.startswith("U8U8:") for r in result.reasons) and any(
            r.startswith("U8S8:") for r in result.reasons
        )
    # Every variant was gated on the synthetic image batch the benchmark used.
    assert all(a.metrics for a in result.accuracy)
    assert catalog_details_json(result.details)["inputs"][0]["description"].startswith("synthetic")


def test_token_ids_feed_the_embedding_within_range_and_samples_decide(tmp_path: Path) -> None:
    source = models.save(models.token_gather(vocab=50), tmp_path / "tok.onnx")
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "tok.samples.npz",
        input_ids=rng.integers(0, 50, (3, 7)),
        attention_mask=np.ones((3, 7), np.int64),
    )
    result = process_model(source, fast_settings(tmp_path), host=detect_host())
    assert result.outcome in (Outcome.QUANTIZED, Outcome.KEPT_FP32), result.reasons
    sources = [(a.spec.name, a.input_source, a.decisive) for a in result.accuracy]
    assert ("u8u8", InputSource.SAMPLES, True) in sources
    assert ("u8u8", InputSource.SYNTHETIC, False) in sources
    assert "on samples inputs" in next(r for r in result.reasons if r.startswith("U8U8:"))


def test_constant_node_weights_are_folded_and_quantized(tmp_path: Path) -> None:
    source = models.save(models.constant_node_weights(), tmp_path / "const.onnx")
    result = process_model(source, fast_settings(tmp_path), host=detect_host())
    assert result.outcome is not Outcome.ERROR, result.reasons
    built = onnx.load(str(result.variants[0].output_path))
    ops = [n.op_type for n in built.graph.node]
    assert "Constant" not in ops and ops.count("MatMulInteger") == 2
    quantized_weights = [
        t for t in built.graph.initializer if t.data_type == onnx.TensorProto.UINT8 and t.dims
    ]
    assert len(quantized_weights) == 2  # stored once, not re-quantized at every run


@pytest.mark.parametrize(
    ("builder", "outcome"),
    [
        (models.ml_only, Outcome.SKIPPED),
        (models.old_unknown_op, Outcome.ERROR),  # an old opset no converter target takes
        (models.matmul_only_in_subgraphs, Outcome.SKIPPED),
    ],
)
def test_preflight_outcomes_are_results_not_exceptions(
    tmp_path: Path, builder: Any, outcome: Outcome
) -> None:
    source = models.save(builder(), tmp_path / "m.onnx")
    result = process_model(source, fast_settings(tmp_path), host=detect_host())
    assert result.outcome is outcome and result.reasons
    assert (result.error is not None) is (outcome is Outcome.ERROR)
    assert result.sha256 == digest(source) and result.seconds > 0


def test_unusable_output_dir_is_an_actionable_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    source = models.save(models.matmul_heavy(hidden=32, layers=1), tmp_path / "m.onnx")
    # The environment's failure, not the model's: raised (exit 3 in `dqd process`), never a result.
    with pytest.raises(OutputDirError) as caught:
        process_model(source, fast_settings(tmp_path, output_dir=str(blocker / "out")), host=detect_host())
    assert "output directory" in str(caught.value) and caught.value.setting == "output_dir"


def test_timeout_fails_the_model_as_transient_and_the_caller_carries_on(tmp_path: Path) -> None:
    source = models.save(models.matmul_heavy(hidden=32, layers=1), tmp_path / "m.onnx")
    result = process_model(
        source, fast_settings(tmp_path, **{"limits.timeout_seconds": 0.5}), host=detect_host()
    )
    assert result.outcome is Outcome.ERROR and result.permanent_error is False
    assert "timed out" in (result.error or "")


def test_missing_file_is_an_error_result(tmp_path: Path) -> None:
    result = process_model(tmp_path / "absent.onnx", fast_settings(tmp_path), host=detect_host())
    assert result.outcome is Outcome.ERROR and "cannot read" in result.reasons[0]


def test_a_model_and_folder_named_in_latin1_with_external_data_is_measured(tmp_path: Path) -> None:
    """onnx's checker and onnxruntime take UTF-8 paths only: such a model was an ``error``
    (``check_model_path(): incompatible function arguments``) before the engine read it
    through a view (dqd.pipeline.readable)."""
    # Saved under UTF-8 names (onnx's writer has the same limit), then renamed; the data file keeps its name.
    built = models.save_with_external_data(
        models.matmul_heavy(hidden=64, layers=2), tmp_path / "b" / "m.onnx"
    )
    (tmp_path / "models").mkdir()
    folder = built.parent.rename(tmp_path / "models" / os.fsdecode(b"\xe9quipe"))
    source = (folder / "m.onnx").rename(folder / os.fsdecode(b"caf\xe9.onnx"))
    before = digest(source)

    result = process_model(
        source, fast_settings(tmp_path), host=detect_host(), model_root=tmp_path / "models"
    )

    assert result.outcome in (Outcome.QUANTIZED, Outcome.KEPT_FP32), result.reasons
    assert len(result.variants) >= 2 and all(v.error is None for v in result.variants)
    output = Path(result.variants[0].output_path or "")
    assert output.parent.parent == tmp_path / "out" / "_xe9quipe" / "caf_xe9"  # dqd.pathtext.for_tools
    assert result.path == str(source.resolve()) and digest(source) == before
