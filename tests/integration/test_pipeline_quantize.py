"""Pre-processing, Constant folding and variant files: atomic, reusable, provenance-stamped."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from dqd.domain import VariantSpec, WeightType
from dqd.modelfile import model_files
from dqd.pipeline import prepare
from dqd.pipeline.prepare import PREPROCESS_RAW, fold_constant_weights, prepare_model
from dqd.pipeline.quantize import OutputDirError, build_variant, variant_path
from tests import models

ORT = "1.32.0"


def test_fold_moves_constant_tensors_into_initializers() -> None:
    model = models.constant_node_weights()
    assert fold_constant_weights(model) == 2
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Relu", "MatMul"]
    assert {t.name for t in model.graph.initializer} == {"w0_out", "w1_out"}
    onnx.checker.check_model(model)


def test_fold_reaches_subgraphs() -> None:
    model = models.matmul_only_in_subgraphs()
    branch = model.graph.node[0].attribute[0].g
    constant = onnx.numpy_helper.from_array(np.ones(2, dtype=np.float32), "k")
    branch.node.insert(0, onnx.helper.make_node("Constant", [], ["k"], value=constant))
    assert fold_constant_weights(model) == 1
    assert "k" in {t.name for t in branch.initializer}


def test_prepare_records_the_path_taken(tmp_path: Path) -> None:
    source = models.save(models.constant_node_weights(), tmp_path / "c.onnx")
    prepared = prepare_model(source, tmp_path / "work")
    assert prepared.preprocess.startswith("pre_process")
    assert prepared.path.is_file() and not prepared.large
    ops = [n.op_type for n in onnx.load(str(prepared.path)).graph.node]
    assert "Constant" not in ops


def test_prepare_falls_back_to_the_raw_model_and_still_folds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("symbolic shape inference failed")

    monkeypatch.setattr(prepare, "_pre_process", broken)
    source = models.save(models.constant_node_weights(), tmp_path / "c.onnx")
    prepared = prepare_model(source, tmp_path / "work")
    assert prepared.preprocess == PREPROCESS_RAW + prepare.FOLD_SUFFIX and prepared.folded_constants == 2
    assert len(prepared.notes) == 2 and "AssertionError" in prepared.notes[0]
    variant = build_variant(
        prepared.path, VariantSpec(WeightType.U8U8), tmp_path / "out", ort_version=ORT, provenance={}
    )
    assert variant.error is None
    assert [n.op_type for n in onnx.load(str(variant.output_path)).graph.node].count("MatMulInteger") == 2


def test_without_folding_the_quantizer_leaves_constant_weights_alone(tmp_path: Path) -> None:
    """Why the pre-fix exists: Constant-node weights are not quantized (or fail) without it."""
    source = models.save(models.constant_node_weights(), tmp_path / "c.onnx")
    variant = build_variant(
        source, VariantSpec(WeightType.U8U8), tmp_path / "out", ort_version=ORT, provenance={}
    )
    if variant.error is None:
        assert "MatMulInteger" not in [n.op_type for n in onnx.load(str(variant.output_path)).graph.node]


def test_variants_are_named_by_spec_and_key_and_reused(tmp_path: Path) -> None:
    source = models.save(models.matmul_heavy(hidden=64, layers=2), tmp_path / "m.onnx")
    spec = VariantSpec(WeightType.U8S8, preprocess="raw")
    first = build_variant(
        source, spec, tmp_path / "out", ort_version=ORT, provenance={"source_sha256": "abc"}
    )
    assert first.output_path == str(variant_path(tmp_path / "out", spec, ORT))
    assert Path(first.output_path).name.startswith("u8s8-")
    assert first.output_sha256 and first.size_bytes and first.quantize_seconds is not None
    second = build_variant(
        source, spec, tmp_path / "out", ort_version=ORT, provenance={"source_sha256": "abc"}
    )
    assert second.output_sha256 == first.output_sha256 and "reused" in second.notes[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [Path(first.output_path).name]


def test_fp32_candidate_is_the_prepared_model_with_provenance(tmp_path: Path) -> None:
    source = models.save(models.matmul_heavy(hidden=32, layers=1), tmp_path / "m.onnx")
    variant = build_variant(
        source, VariantSpec(None), tmp_path / "out", ort_version=ORT, provenance={"dqd_version": "x"}
    )
    model = onnx.load(str(variant.output_path))
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Identity"]
    assert {p.key for p in model.metadata_props} >= {"dqd.dqd_version", "dqd.spec"}


def test_quantizer_failures_are_results(tmp_path: Path) -> None:
    variant = build_variant(
        tmp_path / "missing.onnx",
        VariantSpec(WeightType.U8U8),
        tmp_path / "out",
        ort_version=ORT,
        provenance={},
    )
    assert variant.error is not None and variant.output_path is None
    assert not list((tmp_path / "out").iterdir())  # nothing half-written left behind


def test_large_models_use_external_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prepare, "LARGE_MODEL_BYTES", 1000)
    source = models.save(models.matmul_heavy(hidden=64, layers=2), tmp_path / "m.onnx")
    prepared = prepare_model(source, tmp_path / "work")
    assert prepared.large and (tmp_path / "work" / "prepared.onnx.data").is_file()
    variant = build_variant(
        prepared.path,
        VariantSpec(WeightType.U8U8),
        tmp_path / "out",
        ort_version=ORT,
        provenance={},
        large=True,
    )
    assert variant.error is None
    output = Path(variant.output_path or "")
    (data,) = model_files(output)[1:]  # named by its content (issue 17): never another version's
    assert re.fullmatch(rf"{re.escape(output.stem)}\.[0-9a-f]{{16}}\.data", data.name), data.name
    assert variant.size_bytes and variant.size_bytes > output.stat().st_size
    onnx.checker.check_model(str(output))


def test_an_unwritable_output_dir_raises_an_actionable_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    source = models.save(models.matmul_heavy(hidden=32, layers=1), tmp_path / "m.onnx")
    with pytest.raises(OutputDirError, match="output_dir"):
        build_variant(source, VariantSpec(WeightType.U8U8), blocker / "out", ort_version=ORT, provenance={})


@pytest.mark.parametrize(("weight", "bits"), [(WeightType.Q4, 4), (WeightType.Q8, 8)])
def test_a_blockwise_variant_is_matmulnbits_with_int8_compute(
    tmp_path: Path, weight: WeightType, bits: int
) -> None:
    source = models.save(models.matmul_heavy(hidden=128, layers=2), tmp_path / "m.onnx")
    before = source.read_bytes()
    spec = VariantSpec(weight, block_size=32)
    variant = build_variant(
        source, spec, tmp_path / "out", ort_version=ORT, provenance={"source_sha256": "x"}
    )

    assert variant.error is None, variant.error
    assert source.read_bytes() == before  # the source is only read
    model = onnx.load(str(variant.output_path))
    nodes = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    assert len(nodes) == 2 and "MatMul" not in [n.op_type for n in model.graph.node]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    # accuracy_level 4: activations quantized to int8 at run time, the "dynamic" in dynamic quantization.
    assert attributes["accuracy_level"] == 4 and attributes["bits"] == bits and attributes["block_size"] == 32
    assert {p.key: p.value for p in model.metadata_props}["dqd.spec"].count('"block_size": 32') == 1
    x = np.random.default_rng(0).standard_normal((2, 128)).astype(np.float32)
    reference = _run(source, x)
    quantized = _run(Path(variant.output_path or ""), x)
    error = np.linalg.norm(quantized - reference) / np.linalg.norm(reference)
    # Random Gaussian weights through two layers: about 4-bit and 8-bit SQNR plus int8 activations.
    assert error < (0.25 if bits == 4 else 0.03), error


def test_a_large_blockwise_variant_keeps_its_weights_in_external_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepare, "LARGE_MODEL_BYTES", 1000)
    source = models.save(models.matmul_heavy(hidden=64, layers=2), tmp_path / "m.onnx")
    prepared = prepare_model(source, tmp_path / "work")
    spec = VariantSpec(WeightType.Q4, block_size=32)
    variant = build_variant(prepared.path, spec, tmp_path / "out", ort_version=ORT, provenance={}, large=True)
    assert variant.error is None, variant.error
    output = Path(variant.output_path or "")
    (data,) = model_files(output)[1:]  # named by its content (issue 17): never another version's
    assert re.fullmatch(rf"{re.escape(output.stem)}\.[0-9a-f]{{16}}\.data", data.name), data.name
    x = np.ones((1, 64), np.float32)
    assert _run(output, x).shape == (1, 64)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])
