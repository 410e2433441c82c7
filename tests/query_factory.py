"""Realistic engine results for filling catalogs in query, CLI, API and report tests.

Shaped like what ``dqd process`` records: a shipped-FP32 benchmark, U8U8 and
U8S8 variants with decisive (samples) and informative (synthetic) accuracy,
and one decision with reasons.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime

from dqd.catalog import Catalog
from dqd.domain import (
    AccuracyResult,
    BenchmarkResult,
    EngineResult,
    HostInfo,
    InputSource,
    LatencyStats,
    Outcome,
    VariantResult,
    VariantSpec,
    WeightType,
)
from dqd.records import DecisionDetails, GraphSummary

ORT = "1.32.0"
U8U8 = VariantSpec(WeightType.U8U8, preprocess="symbolic")
U8S8 = VariantSpec(WeightType.U8S8, preprocess="symbolic")


def sha_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def host(host_class: str = "x86_64-avx2", name: str = "build-01") -> HostInfo:
    return HostInfo(
        host_id=hashlib.sha256(name.encode()).hexdigest()[:16],
        hostname=name,
        host_class=host_class,
        arch=host_class.split("-")[0],
        cpu_model="Intel(R) Xeon(R) CPU @ 2.20GHz",
        isa_flags=("sse4_1", "avx2"),
        usable_cores=2,
        os="Linux 6.1",
        ort_version=ORT,
        onnx_version="1.17.0",
        dqd_version="0.1.0",
    )


def _latency(median: float, rng: random.Random) -> LatencyStats:
    samples = tuple(round(max(0.1, rng.gauss(median, median * 0.05)), 3) for _ in range(60))
    ordered = sorted(samples)
    return LatencyStats(median, ordered[53], ordered[59], rounds=60, samples_ms=samples)


def _accuracy(spec: VariantSpec, cosine: float, source: InputSource, decisive: bool) -> AccuracyResult:
    passed = cosine >= 0.98
    metrics = {
        "last_hidden_state": {"cosine_mean": cosine, "cosine_worst": cosine - 0.01, "max_abs_diff": 0.08},
        "pooler_output": {"cosine_mean": min(1.0, cosine + 0.005), "relative_l2": 0.05},
    }
    reason = "cosine within thresholds" if passed else f"cosine_mean {cosine:.3f} < 0.98"
    return AccuracyResult(spec, source, metrics, passed, reason, decisive)


def engine_result(
    path: str,
    *,
    outcome: Outcome = Outcome.QUANTIZED,
    sha256: str | None = None,
    ort_version: str = ORT,
    fp32_ms: float = 10.0,
    u8u8_speedup: float = 1.6,
    u8s8_speedup: float = 1.1,
    cosine: float = 0.995,
    output_dir: str = "/srv/dqd-out",
    seed: int = 0,
) -> EngineResult:
    """One model's result; ``outcome`` picks the decision, the numbers stay consistent with it."""
    rng = random.Random(seed)
    sha = sha256 or sha_of(path)
    if outcome in (Outcome.SKIPPED, Outcome.ERROR):
        return EngineResult(
            path=path,
            sha256=sha,
            outcome=outcome,
            selected=None,
            speedup=None,
            speedup_ci=None,
            reasons=("quantizable ops only inside If/Loop/Scan bodies; --search thorough can reach them",)
            if outcome is Outcome.SKIPPED
            else ("preflight failed",),
            error="not an ONNX model: truncated protobuf" if outcome is Outcome.ERROR else None,
            seconds=0.4,
            search_mode="design",
            policy_version="1",
            ort_version=ort_version,
            source_size_bytes=4096,
        )
    variants = tuple(
        VariantResult(
            spec,
            ort_version,
            f"{output_dir}/{path[:-5]}.{spec.name}.onnx",
            sha_of(path + spec.name),
            2048,
            0.7,
        )
        for spec in (U8U8, U8S8)
    )
    benchmarks = (
        BenchmarkResult(None, 1, _latency(fp32_ms, rng), None, None, 180_000_000, "u8u8"),
        BenchmarkResult(
            U8U8,
            1,
            _latency(fp32_ms / u8u8_speedup, rng),
            u8u8_speedup,
            (u8u8_speedup - 0.05, u8u8_speedup + 0.05),
            150_000_000,
            "u8u8",
        ),
        BenchmarkResult(
            U8S8,
            1,
            _latency(fp32_ms / u8s8_speedup, rng),
            u8s8_speedup,
            (u8s8_speedup - 0.05, u8s8_speedup + 0.05),
            150_000_000,
            "u8s8",
        ),
    )
    accuracy = (
        _accuracy(U8U8, cosine, InputSource.SAMPLES, True),
        _accuracy(U8U8, cosine - 0.002, InputSource.SYNTHETIC, False),
        _accuracy(U8S8, cosine - 0.003, InputSource.SAMPLES, True),
    )
    selected = U8U8 if outcome is Outcome.QUANTIZED else None
    speedup = u8u8_speedup if selected else None
    reasons = (
        (f"u8u8 passed the gate (cosine_mean {cosine:.3f}) and is {u8u8_speedup:.2f}x faster",)
        if selected
        else (f"u8u8 {u8u8_speedup:.2f}x and u8s8 {u8s8_speedup:.2f}x are not faster than FP32",)
    )
    return EngineResult(
        path=path,
        sha256=sha,
        outcome=outcome,
        selected=selected,
        speedup=speedup,
        speedup_ci=(speedup - 0.05, speedup + 0.05) if speedup else None,
        reasons=reasons,
        error=None,
        seconds=12.5,
        search_mode="design",
        policy_version="1",
        ort_version=ort_version,
        source_size_bytes=4096,
        variants=variants,
        accuracy=accuracy,
        benchmarks=benchmarks,
        details=DecisionDetails(checked=True, preflight=graph_summary(opsets={"ai.onnx": 17})),
    )


def graph_summary(**fields: object) -> GraphSummary:
    """A preflight summary of a small MatMul model; ``fields`` override any of its facts."""
    facts: dict[str, object] = {
        "path": "m.onnx",
        "size_bytes": 4096,
        "ir_version": 8,
        "opsets": {"": 17},
        "producer": "tests",
        "inputs": (),
        "outputs": (),
        "op_histogram": {"MatMul": 1},
        "quantizable_top_level": {"MatMul": 1},
        "quantizable_in_subgraphs": {},
        "control_flow": {},
        "initializer_types": {"float32": 1},
        "constant_node_weights": 0,
        "external_data": False,
        **fields,
    }
    return GraphSummary(**facts)  # type: ignore[arg-type]


def add_model(
    catalog: Catalog,
    path: str,
    *,
    host_info: HostInfo | None = None,
    now: datetime | None = None,
    **kwargs: object,
) -> int:
    """Observe ``path`` and record a decision for it; returns the decision id."""
    result = engine_result(path, **kwargs)  # type: ignore[arg-type]
    info = host_info or host()
    catalog.upsert_host(info, now=now)
    catalog.observe_file(path, result.sha256, 4096, now=now)
    return catalog.record_engine_result(info, result, now=now)
