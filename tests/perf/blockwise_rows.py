"""MatMulNBits against dynamic int8 by activation rows: the evidence for ladder_rules' blockwise_max_rows.

A stack of six 768x3072 / 3072x768 MatMul pairs (a transformer block's MLP,
built in code) is quantized by dqd's own quantizer as U8S8 per-channel, U8U8,
and MatMulNBits (4 bits in blocks of 128 and 32, 8 bits in blocks of 128);
each is timed against FP32 in one interleaved run per row count (1 row: a
decoder's decode step; 128 rows: an encoder's sequence). Printed: the speed-up over FP32 and its interval, per
variant and row count, and the host class the figures belong to. With
``--minilm``, the same variants of the corpus's minilm-l6 (a real encoder) at
one sentence of 128 tokens, and their embedding cosine on its real sentences.

    python tests/perf/blockwise_rows.py [--threads 1] [--rows 1 2 4 8 16 32 64 128] [--seconds 12] [--minilm]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from dqd.domain import VariantSpec, WeightType  # noqa: E402
from dqd.hostinfo import this_host_class  # noqa: E402
from dqd.pipeline.benchmark import Contender, benchmark_interleaved  # noqa: E402
from dqd.pipeline.quantize import build_variant  # noqa: E402
from dqd.settings import BenchmarkSettings  # noqa: E402

SPECS = {
    "u8s8-pc": VariantSpec(WeightType.U8S8, per_channel=True),
    "u8u8": VariantSpec(WeightType.U8U8),
    "q4-b128": VariantSpec(WeightType.Q4, block_size=128),
    "q4-b32": VariantSpec(WeightType.Q4, block_size=32),
    "q8-b128": VariantSpec(WeightType.Q8, block_size=128),
}


def mlp_stack(path: Path, layers: int = 6, hidden: int = 768, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    current = "x"
    for i in range(layers):
        up = (rng.standard_normal((hidden, 4 * hidden)) * 0.02).astype(np.float32)
        down = (rng.standard_normal((4 * hidden, hidden)) * 0.02).astype(np.float32)
        weights += [numpy_helper.from_array(up, f"up{i}"), numpy_helper.from_array(down, f"down{i}")]
        nodes += [
            helper.make_node("MatMul", [current, f"up{i}"], [f"a{i}"]),
            helper.make_node("Relu", [f"a{i}"], [f"r{i}"]),
            helper.make_node("MatMul", [f"r{i}", f"down{i}"], [f"b{i}"]),
            helper.make_node("Add", [f"b{i}", current], [f"h{i}"]),
        ]
        current = f"h{i}"
    graph = helper.make_graph(
        nodes,
        "mlp_stack",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", hidden])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["rows", hidden])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--minilm", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dqd-blockwise-rows-"))
    source = mlp_stack(work / "mlp.onnx")
    paths = {}
    for name, spec in SPECS.items():
        built = build_variant(source, spec, work / "out", ort_version="perf", provenance={})
        assert built.output_path is not None, built.error
        paths[name] = Path(built.output_path)
    settings = BenchmarkSettings(min_seconds=3.0, max_seconds=args.seconds)
    print(f"host class {this_host_class()}, {args.threads} thread(s); speed-up over FP32 [95% interval]")
    print(f"{'rows':>5} {'FP32 ms':>8}  " + "  ".join(f"{name:>20}" for name in SPECS))
    for rows in args.rows:
        feed = {"x": np.random.default_rng(rows).standard_normal((rows, 768)).astype(np.float32)}
        contenders = [Contender(None, source), *(Contender(SPECS[n], p) for n, p in paths.items())]
        timed = benchmark_interleaved(contenders, feed, settings, threads=args.threads)
        cells = []
        for result in timed[1:]:
            low, high = result.speedup_ci or (0.0, 0.0)
            cells.append(f"{result.speedup or 0.0:5.2f}x [{low:.2f}, {high:.2f}]".rjust(20))
        print(f"{rows:>5} {timed[0].latency.median_ms:8.2f}  " + "  ".join(cells))
    if args.minilm:
        minilm(work, settings, args.threads)
    print(f"\nwork folder {work}")


def minilm(work: Path, settings: BenchmarkSettings, threads: int) -> None:
    import onnxruntime as ort

    corpus = REPO.parent / "shared" / "corpus"
    source = corpus / "minilm-l6.onnx"
    tokens = np.random.default_rng(0).integers(1000, 20000, (1, 128)).astype(np.int64)
    feed = {
        "input_ids": tokens,
        "attention_mask": np.ones_like(tokens),
        "token_type_ids": np.zeros_like(tokens),
    }
    paths = {}
    for name, spec in SPECS.items():
        built = build_variant(source, spec, work / "minilm", ort_version="perf", provenance={})
        assert built.output_path is not None, built.error
        paths[name] = Path(built.output_path)
    contenders = [Contender(None, source), *(Contender(SPECS[n], p) for n, p in paths.items())]
    timed = benchmark_interleaved(contenders, feed, settings, threads=threads)
    with np.load(corpus / "minilm-l6.samples.npz") as data:
        sentences = {name: data[name] for name in data.files}

    def pooled(path: Path) -> np.ndarray:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        hidden = session.run(None, sentences)[0]
        mask = sentences["attention_mask"][..., None].astype(np.float32)
        return np.asarray((hidden * mask).sum(axis=1))

    reference = pooled(source)
    print(f"\nminilm-l6, 1 x 128 tokens: FP32 {timed[0].latency.median_ms:.2f} ms")
    for name, result in zip(paths, timed[1:], strict=True):
        embedding = pooled(paths[name])
        cosine = np.sum(embedding * reference, axis=1) / (
            np.linalg.norm(embedding, axis=1) * np.linalg.norm(reference, axis=1)
        )
        low, high = result.speedup_ci or (0.0, 0.0)
        print(
            f"  {name:8s} {result.speedup or 0.0:5.2f}x [{low:.2f}, {high:.2f}]  "
            f"real-sentence embedding cosine mean {cosine.mean():.4f}"
        )


if __name__ == "__main__":
    main()
