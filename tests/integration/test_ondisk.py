"""A large model's pre-processing and quantization with its weights on disk (dqd.pipeline.ondisk):
the same graphs and tensors as onnxruntime's own functions make with the weights in memory, and
only the quantized weights held while quantizing.

Small models stand in for large ones (``large=True``: the path a model over
``limits.external_data_mb`` takes); the memory test uses a 256 MiB model.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from dqd.domain import InputSource, VariantSpec, WeightType
from dqd.modelfile import file_sha256, model_files
from dqd.pipeline import prepare
from dqd.pipeline.accuracy import GateThresholds
from dqd.pipeline.external import INLINE_LIMIT
from dqd.pipeline.inputs import InputSet
from dqd.pipeline.inspect import FixableCause
from dqd.pipeline.ondisk import OPTIMIZER_FAILED, pre_process_on_disk, weights_on_disk
from dqd.pipeline.prefix import repair
from dqd.pipeline.prepare import PREPROCESS_FULL, PREPROCESS_RAW, is_large, prepare_model
from dqd.pipeline.quantize import build_variant
from dqd.pipeline.workbench import Workbench
from dqd.settings import AccuracySettings, BenchmarkSettings
from tests import models

ORT = "1.32.0"
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
SPECS = [
    VariantSpec(WeightType.U8U8),
    VariantSpec(WeightType.U8S8, per_channel=True),
    VariantSpec(WeightType.U8S8, reduce_range=True, op_types=("MatMul",)),
]


def reshaping_mlp(hidden: int = 64, seed: int = 7) -> onnx.ModelProto:
    """Shapes symbolic inference must read by value (a Reshape target), a Gemm with transB (the
    quantizer transposes it into a new tensor), a Constant-node weight, a bias left in FP32."""
    rng = np.random.default_rng(seed)

    def weight(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        return numpy_helper.from_array(
            (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32), name
        )

    constant = weight("w_const", (hidden, hidden))
    nodes = [
        helper.make_node("MatMul", ["x", "w0"], ["h0"], name="MatMul_0"),
        helper.make_node("Add", ["h0", "b0"], ["h1"]),
        helper.make_node("Reshape", ["h1", "flat"], ["h2"]),
        helper.make_node("Gemm", ["h2", "w1", "b1"], ["h3"], name="Gemm_1", transB=1),
        helper.make_node("Relu", ["h3"], ["h4"]),
        helper.make_node("Constant", [], ["w2"], value=constant),
        helper.make_node("MatMul", ["h4", "w2"], ["y"], name="MatMul_2"),
    ]
    initializers = [
        weight("w0", (hidden, hidden)),
        weight("b0", (hidden,)),
        numpy_helper.from_array(np.array([-1, hidden], dtype=np.int64), "flat"),
        weight("w1", (hidden, hidden)),
        weight("b1", (hidden,)),
    ]
    graph = helper.make_graph(
        nodes,
        "reshaping_mlp",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", "seq", hidden])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def fingerprint(model: onnx.ModelProto) -> dict[str, Any]:
    """What two ways of making a model must agree on: nodes, inferred types, tensors' values."""
    opsets = {o.domain: o.version for o in model.opset_import}
    nodes = []
    for node in model.graph.node:
        defaults = _defaults(node, opsets)
        attributes = [
            (a.name, helper.get_attribute_value(a))
            for a in node.attribute
            if a.type != a.TENSOR and a.SerializeToString() != defaults.get(a.name)
        ]
        nodes.append((node.op_type, node.domain, list(node.input), list(node.output), repr(attributes)))
    tensors = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return {
        "nodes": nodes,
        "value_info": sorted(vi.SerializeToString() for vi in model.graph.value_info),
        "tensors": tensors,
        "opsets": sorted((o.domain, o.version) for o in model.opset_import),
    }


def _defaults(node: onnx.NodeProto, opsets: dict[str, int]) -> dict[str, bytes]:
    """The node's attributes at their schema defaults, serialized (written out or left out alike)."""
    domain = node.domain or ""
    try:
        schema = onnx.defs.get_schema(node.op_type, opsets.get(domain, 1), domain)
    except onnx.defs.SchemaError:
        return {}
    found = {}
    for name, attribute in schema.attributes.items():
        if attribute.default_value.type:
            default = onnx.AttributeProto()
            default.CopyFrom(attribute.default_value)
            default.name = name
            found[name] = default.SerializeToString()
    return found


def assert_same(left: onnx.ModelProto, right: onnx.ModelProto) -> None:
    a, b = fingerprint(left), fingerprint(right)
    assert a["nodes"] == b["nodes"]
    assert a["value_info"] == b["value_info"]
    assert a["opsets"] == b["opsets"]
    assert a["tensors"].keys() == b["tensors"].keys()
    for name, value in a["tensors"].items():
        np.testing.assert_array_equal(value, b["tensors"][name], err_msg=name)


def data_files_of(path: Path) -> set[str]:
    model = onnx.load(str(path), load_external_data=False)
    return {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}


@pytest.fixture(params=[1024, 0], ids=["small-inline", "all-external"])
def source(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """The model with its tensors in one external file: those over 1 KiB (as onnx and exporters
    save by default), or all of them, shape targets included."""
    path = tmp_path / "src" / "m.onnx"
    path.parent.mkdir()
    onnx.save_model(
        reshaping_mlp(),
        str(path),
        save_as_external_data=True,
        location="m.onnx.data",
        size_threshold=request.param,
    )
    return path


def _quant_pre_process(source: Path, out: Path, *, skip_symbolic_shape: bool) -> onnx.ModelProto:
    """onnxruntime's pre-processing of ``source`` loaded whole (saved again with every tensor inline)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    inline = models.save(onnx.load(str(source)), out.with_name("inline-" + out.name))
    quant_pre_process(str(inline), str(out), skip_symbolic_shape=skip_symbolic_shape)
    return onnx.load(str(out))


@pytest.mark.parametrize("skip_symbolic_shape", [False, True])
def test_pre_processing_on_disk_makes_what_quant_pre_process_makes(
    source: Path, tmp_path: Path, skip_symbolic_shape: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # quant_pre_process may write into the cwd
    expected = _quant_pre_process(source, tmp_path / "expected.onnx", skip_symbolic_shape=skip_symbolic_shape)
    work, made = tmp_path / "work", tmp_path / "out" / "p.onnx"
    work.mkdir()
    made.parent.mkdir()
    before = {f.name: file_sha256(f) for f in model_files(source)}
    pre_process_on_disk(source, made, work, skip_symbolic_shape=skip_symbolic_shape)
    assert data_files_of(made) == {"p.onnx.data"}  # one data file beside it, nothing read from work
    shutil.rmtree(work)
    assert_same(onnx.load(str(made)), expected)
    assert {"onnx.quant.pre_process"} <= {p.key for p in onnx.load(str(made)).metadata_props}
    assert {f.name: file_sha256(f) for f in model_files(source)} == before


@pytest.mark.corpus
@pytest.mark.parametrize("skip_symbolic_shape", [False, True])
def test_pre_processing_on_disk_matches_on_a_real_transformer(
    tmp_path: Path, skip_symbolic_shape: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """minilm-l6, with its weights external: made alike, or refused alike (symbolic shape
    inference gives up on it either way)."""
    original = CORPUS / "minilm-l6.onnx"
    if not original.is_file():
        pytest.skip("../shared/corpus is absent")
    monkeypatch.chdir(tmp_path)  # symbolic shape inference saves into the cwd when it gives up
    source = models.save_with_external_data(onnx.load(str(original)), tmp_path / "src" / "minilm.onnx")
    work = tmp_path / "work"
    work.mkdir()
    outcomes = []
    for make in (
        lambda: _quant_pre_process(
            source, tmp_path / "expected.onnx", skip_symbolic_shape=skip_symbolic_shape
        ),
        lambda: pre_process_on_disk(
            source, tmp_path / "p.onnx", work, skip_symbolic_shape=skip_symbolic_shape
        ),
    ):
        try:
            make()
            outcomes.append("made")
        except Exception as exc:  # the pre-processor raises anything
            outcomes.append(type(exc).__name__)
    assert outcomes[0] == outcomes[1] and outcomes[0] in (
        ("made",) if skip_symbolic_shape else ("made", "Exception")
    )
    if outcomes[0] == "made":
        assert_same(onnx.load(str(tmp_path / "p.onnx")), onnx.load(str(tmp_path / "expected.onnx")))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_quantizing_on_disk_makes_what_quantize_dynamic_makes(
    source: Path, tmp_path: Path, spec: VariantSpec
) -> None:
    prepared = prepare_model(source, tmp_path / "prepared", large=True)
    assert prepared.large and prepared.preprocess.startswith(PREPROCESS_FULL)
    assert data_files_of(prepared.path) == {"prepared.onnx.data"}
    in_memory = prepare_model(source, tmp_path / "in_memory")
    assert_same(onnx.load(str(prepared.path)), onnx.load(str(in_memory.path)))

    streamed = build_variant(
        prepared.path, spec, tmp_path / "large", ort_version=ORT, provenance={"k": "v"}, large=True
    )
    loaded = build_variant(in_memory.path, spec, tmp_path / "small", ort_version=ORT, provenance={"k": "v"})
    assert streamed.error is None and streamed.output_path is not None and loaded.output_path is not None
    variant = Path(streamed.output_path)
    (data_file,) = data_files_of(variant)  # one content-named file beside the model
    assert data_file.startswith(variant.stem + ".") and (variant.parent / data_file).is_file()
    assert_same(onnx.load(str(variant)), onnx.load(loaded.output_path))
    assert {p.key: p.value for p in onnx.load(str(variant)).metadata_props}["dqd.k"] == "v"


def test_the_prepared_fp32_of_a_large_model_is_a_variant_too(source: Path, tmp_path: Path) -> None:
    prepared = prepare_model(source, tmp_path / "prepared", large=True)
    fp32 = build_variant(
        prepared.path, VariantSpec(None), tmp_path / "out", ort_version=ORT, provenance={}, large=True
    )
    assert fp32.error is None and fp32.output_path is not None
    assert_same(onnx.load(fp32.output_path), onnx.load(str(prepared.path)))


def test_a_large_model_taken_raw_is_folded_with_its_data_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pre-processing failed: the source itself is folded and saved, its weights copied, not loaded."""

    def broken(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("symbolic shape inference failed")

    monkeypatch.setattr(prepare, "_pre_process", broken)
    source = models.save_with_external_data(
        models.constant_node_weights(hidden=64), tmp_path / "s" / "c.onnx"
    )
    before = {f.name: file_sha256(f) for f in model_files(source)}
    prepared = prepare_model(source, tmp_path / "prepared", large=True)
    assert prepared.preprocess == PREPROCESS_RAW + prepare.FOLD_SUFFIX and prepared.folded_constants == 2
    model = onnx.load(str(prepared.path), load_external_data=False)
    big = [t for t in model.graph.initializer if np.prod(t.dims) * 4 >= INLINE_LIMIT]
    assert len(big) == 2 and all(t.data_location == onnx.TensorProto.EXTERNAL for t in big)
    assert data_files_of(prepared.path) == {"prepared.onnx.data"}
    folded = onnx.load(str(prepared.path))
    weights = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}
    for node in models.constant_node_weights(hidden=64).graph.node[:2]:
        np.testing.assert_array_equal(weights[node.output[0]], numpy_helper.to_array(node.attribute[0].t))
    assert {f.name: file_sha256(f) for f in model_files(source)} == before


def test_this_onnxruntime_has_the_loaders_replaced() -> None:
    """An onnxruntime that moved them would quietly quantize large models in memory again."""
    with weights_on_disk(Path.cwd()) as replaced:
        assert replaced


def gemm_stack(width: int = 2048, layers: int = 16, seed: int = 12) -> onnx.ModelProto:
    """Gemm layers with ``transB=1``: the quantizer writes a transposed copy of each weight."""
    rng = np.random.default_rng(seed)
    nodes, weights, current = [], [], "x"
    for layer in range(layers):
        name = f"w{layer}"
        weights.append(numpy_helper.from_array(rng.standard_normal((width, width)).astype(np.float32), name))
        nodes.append(helper.make_node("Gemm", [current, name], [f"h{layer}"], transB=1))
        current = f"h{layer}"
    graph = helper.make_graph(
        nodes,
        "gemm_stack",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info(current, onnx.TensorProto.FLOAT, [1, width])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


PEAK_SCRIPT = """
import json, sys
from pathlib import Path
from dqd.domain import VariantSpec, WeightType
from dqd.pipeline.quantize import build_variant
import onnx, onnxruntime.quantization  # imported before the baseline is read


def status(key):  # this process's own figures (ru_maxrss would carry the forking parent's peak over exec)
    line = next(line for line in open("/proc/self/status") if line.startswith(key + ":"))
    return int(line.split()[1]) * 1024


open("/proc/self/clear_refs", "w").write("5")  # the peak so far is now the current size
before = status("VmRSS")
prepared, out, large = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
spec = VariantSpec(WeightType.U8U8)
result = build_variant(prepared, spec, out, ort_version="x", provenance={}, large=large)
print(json.dumps({"error": result.error, "growth": status("VmHWM") - before}))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("build", "held"),
    [(lambda: models.matmul_heavy(hidden=2048, layers=16), 0.7), (gemm_stack, 1.7)],
    ids=["matmul", "gemm-transB"],
)
def test_quantizing_on_disk_holds_the_quantized_weights_not_the_model(
    tmp_path: Path, build: Any, held: float
) -> None:
    """The peak grows by about the int8 weights (S/4) on disk, by over twice the model in memory.
    A Gemm with transB costs S more on either path: onnxruntime's quantizer turns it into a MatMul
    on a transposed FP32 copy of its weight, held in memory (``ONNXModel.replace_gemm_with_matmul``)."""
    source = models.save_with_external_data(build(), tmp_path / "s" / "m.onnx")
    size = sum(f.stat().st_size for f in model_files(source))
    prepared = prepare_model(source, tmp_path / "prepared", large=True)

    def growth(large: bool) -> int:
        out = tmp_path / ("large" if large else "small")
        run = subprocess.run(
            [sys.executable, "-c", PEAK_SCRIPT, str(prepared.path), str(out), "1" if large else "0"],
            capture_output=True,
            text=True,
            check=True,
        )
        found = json.loads(run.stdout.splitlines()[-1])
        assert found["error"] is None
        return int(found["growth"])

    on_disk, in_memory = growth(large=True), growth(large=False)
    print(
        f"model {size / 2**20:.0f} MiB: peak growth on disk {on_disk / 2**20:.0f} MiB, "
        f"in memory {in_memory / 2**20:.0f} MiB"
    )
    assert on_disk < held * size  # the int8 weights (S/4), one weight in float, the quantizer's copies
    assert in_memory > 2 * size  # what the test would see if the weights were loaded


def _opset9_mlp() -> onnx.ModelProto:
    model = models.matmul_heavy(hidden=64, layers=2)
    model.opset_import[0].version = 9
    return model


PRE_FIXES = {
    FixableCause.OLD_OPSET: (_opset9_mlp, "x", (3, 64), np.float32),
    FixableCause.COMPUTED_WEIGHTS: (models.computed_conv_weights, "x", (1, 4, 16, 16), np.float32),
    FixableCause.HALF_PRECISION: (lambda: models.half_mlp(64, 2), "x", (3, 64), np.float16),
}


@pytest.mark.parametrize("cause", list(PRE_FIXES), ids=lambda c: c.value)
def test_a_large_models_pre_fix_keeps_its_data_on_disk(tmp_path: Path, cause: FixableCause) -> None:
    """Each pre-fix's copy of a large model: its weights in its own data file, the same outputs
    as the copy made in memory, the source untouched."""
    build, name, shape, dtype = PRE_FIXES[cause]
    source = tmp_path / "s" / "m.onnx"
    source.parent.mkdir()
    onnx.save_model(build(), str(source), save_as_external_data=True, location="m.onnx.data")
    before = {f.name: file_sha256(f) for f in model_files(source)}
    (tmp_path / "large").mkdir()
    (tmp_path / "small").mkdir()
    large = repair(cause, source, tmp_path / "large", ort_version=ORT, large=True)
    small = repair(cause, source, tmp_path / "small", ort_version=ORT)
    assert data_files_of(large.path) == {large.path.name + ".data"}
    assert (large.fix, large.label) == (small.fix, small.label)
    feed = {name: np.random.default_rng(0).standard_normal(shape).astype(dtype)}

    def run(path: Path) -> list[np.ndarray]:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)

    for got, expected in zip(run(large.path), run(small.path), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert {f.name: file_sha256(f) for f in model_files(source)} == before


def test_a_large_models_fp32_session_is_not_reopened_once_released(tmp_path: Path) -> None:
    """The gate reads FP32's kept outputs; only the benchmark opens FP32 again (its own session, closed
    after it), so a large model never has two FP32 sessions open (measured: 5.2 GiB for 2.2 GiB)."""
    source = models.save_with_external_data(
        models.matmul_heavy(hidden=64, layers=2), tmp_path / "s" / "m.onnx"
    )
    prepared = prepare_model(source, tmp_path / "prepared", large=True)
    feeds = tuple(
        {"x": np.random.default_rng(i).standard_normal((2, 64)).astype(np.float32)} for i in range(2)
    )
    bench = Workbench(
        source=source,
        prepared=prepared,
        variant_directory=tmp_path / "out",
        input_sets=[InputSet(InputSource.SYNTHETIC, feeds, "two batches")],
        thresholds=GateThresholds.from_settings(AccuracySettings()),
        benchmark_settings=BenchmarkSettings(
            warmup_runs=1, min_seconds=0.2, max_seconds=0.5, max_foreign_load=1
        ),
        threads=1,
        ort_version=ORT,
        provenance={},
    )
    bench.reference_outputs()
    measured = bench.measure(VariantSpec(WeightType.U8U8), step="u8u8")
    assert measured.measurement is not None and measured.measurement.gate_passed
    assert measured.benchmarks and bench._fp32_session is None


def test_relative_paths_survive_the_change_of_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """output_dir defaults to ./dqd-out: the quantizer runs in the prepared model's folder, so
    a relative path given to it would point elsewhere."""
    monkeypatch.chdir(tmp_path)
    source = models.save_with_external_data(models.matmul_heavy(hidden=64, layers=2), Path("s/m.onnx"))
    prepared = prepare_model(source, Path("dqd-out/work"), large=True)
    assert not prepared.path.is_absolute()
    variant = build_variant(
        prepared.path,
        VariantSpec(WeightType.U8U8),
        Path("dqd-out/m"),
        ort_version=ORT,
        provenance={},
        large=True,
    )
    assert variant.error is None and variant.output_path is not None
    assert (tmp_path / variant.output_path).is_file() and data_files_of(tmp_path / variant.output_path)


def position_embedded(tokens: int = 600, width: int = 1024, seed: int = 11) -> onnx.ModelProto:
    """``x + pos`` with a learned position embedding over 1 MiB (ViT, CLIP), then a MatMul: symbolic
    shape inference reads every Add input by value, whatever its size."""
    rng = np.random.default_rng(seed)
    pos = numpy_helper.from_array(rng.standard_normal((1, tokens, width)).astype(np.float32), "pos")
    weight = numpy_helper.from_array((rng.standard_normal((width, 64)) / 32).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "pos"], ["h"]), helper.make_node("MatMul", ["h", "w"], ["y"])],
        "position_embedded",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", tokens, width])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", tokens, 64])],
        [pos, weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_symbolic_shapes_read_a_large_embedding_from_the_models_folder(tmp_path: Path) -> None:
    source = models.save_with_external_data(position_embedded(), tmp_path / "s" / "m.onnx")
    on_disk = prepare_model(source, tmp_path / "large", large=True)
    in_memory = prepare_model(source, tmp_path / "small")
    assert on_disk.preprocess == in_memory.preprocess == PREPROCESS_FULL, on_disk.notes
    assert_same(onnx.load(str(on_disk.path)), onnx.load(str(in_memory.path)))
    assert not list(source.parent.glob("sym_shape_infer_temp*"))


def test_a_model_is_large_by_every_data_file_it_references(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    model = models.matmul_heavy(hidden=64, layers=2)
    onnx.save_model(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    assert is_large(path, threshold_bytes=30_000)  # 32 KiB of weights, none in a file named m.onnx*
    assert not is_large(path, threshold_bytes=40_000)


@pytest.mark.parametrize("opset", [10, 9])
def test_an_old_opset_large_model_is_pre_processed_like_quant_pre_process_does(
    tmp_path: Path, opset: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below opset 11 quant_pre_process converts the model to 11 (the quantizer's fused
    DynamicQuantizeLinear needs it): the on-disk path does too, on the graph alone."""
    monkeypatch.chdir(tmp_path)
    model = models.matmul_heavy(hidden=64, layers=2)
    model.opset_import[0].version = opset
    source = models.save_with_external_data(model, tmp_path / "s" / "m.onnx")
    expected = _quant_pre_process(source, tmp_path / "expected.onnx", skip_symbolic_shape=False)
    work, made = tmp_path / "work", tmp_path / "p.onnx"
    work.mkdir()
    pre_process_on_disk(source, made, work, skip_symbolic_shape=False)
    assert_same(onnx.load(str(made)), expected)
    variant = build_variant(
        made, VariantSpec(WeightType.U8U8), tmp_path / "v", ort_version=ORT, provenance={}, large=True
    )
    assert variant.output_path is not None
    ops = {n.op_type for n in onnx.load(variant.output_path).graph.node}
    assert "DynamicQuantizeLinear" in ops, ops


def test_a_graph_onnxruntime_cannot_optimize_is_pre_processed_without_it_as_quant_pre_process_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """quant_pre_process logs its optimizer's failure and goes on: a large model must not be
    taken raw where a small one is pre-processed; the prepared record says what was skipped."""
    monkeypatch.chdir(tmp_path)
    model = models.matmul_heavy(hidden=64, layers=2)
    last = model.graph.node[-1].output[0]
    model.graph.node.append(helper.make_node("Foo", [last], ["foo"], domain="com.example"))
    model.graph.output[0].name = "foo"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    source = models.save_with_external_data(model, tmp_path / "s" / "m.onnx")
    expected = _quant_pre_process(source, tmp_path / "expected.onnx", skip_symbolic_shape=True)
    prepared = prepare_model(source, tmp_path / "prepared", large=True)
    assert prepared.preprocess == prepare.PREPROCESS_NO_SYMBOLIC
    assert prepared.notes[-1].startswith(OPTIMIZER_FAILED) and "com.example:Foo" in prepared.notes[-1]
    assert data_files_of(prepared.path) == {"prepared.onnx.data"}
    assert_same(onnx.load(str(prepared.path)), expected)
    quantization_logs = logging.getLogger("onnxruntime.quantization")
    level = quantization_logs.level
    quantization_logs.setLevel(logging.CRITICAL)  # as dqd.pipeline.quiet leaves it in the engine child
    try:
        small = prepare_model(source, tmp_path / "prepared-small", large=False)
    finally:
        quantization_logs.setLevel(level)
    assert small.preprocess == prepared.preprocess
    assert small.notes[-1].startswith(OPTIMIZER_FAILED) and "com.example:Foo" in small.notes[-1]
