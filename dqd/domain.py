"""Plain domain objects shared by the catalog, the pipeline and the daemon.

Frozen dataclasses and enums only: no I/O here. The catalog builds these from
rows; the pipeline builds them from measurements.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from dqd.records import DecisionDetails


class Outcome(StrEnum):
    QUANTIZED = "quantized"
    OPTIMIZED_FP32 = "optimized_fp32"
    KEPT_FP32 = "kept_fp32"
    SKIPPED = "skipped"
    ERROR = "error"

    def label(self, source_precision: str = "fp32") -> str:
        """The outcome as people read it: a kept FP16 original is not reported as FP32."""
        if source_precision == "fp32" or self in (Outcome.SKIPPED, Outcome.ERROR):
            return self.value
        if self is Outcome.KEPT_FP32:
            return f"kept_{source_precision} (original)"
        return f"{self.value} (from {source_precision})"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobKind(StrEnum):
    QUANTIZE = "quantize"
    REQUANTIZE = "requantize"


class WeightType(StrEnum):
    """Activation/weight integer types of a dynamic variant.

    Q4 and Q8 are onnxruntime's ``MatMulNBits`` at ``accuracy_level`` 4:
    MatMul weights quantized offline to 4 or 8 bits per block of
    ``VariantSpec.block_size`` input channels (symmetric), activations to int8
    per block at run time; dynamic quantization in substance, MatMul only.
    """

    U8U8 = "U8U8"  # uint8 activations, uint8 weights
    U8S8 = "U8S8"  # uint8 activations, int8 weights
    Q4 = "Q4"  # MatMulNBits: int8 activations per block, 4-bit blockwise weights
    Q8 = "Q8"  # MatMulNBits: int8 activations per block, 8-bit blockwise weights

    @property
    def blockwise(self) -> bool:
        """Built by onnxruntime's MatMulNBitsQuantizer rather than quantize_dynamic."""
        return self in BLOCKWISE_BITS


# Weight bits of the blockwise (MatMulNBits) types.
BLOCKWISE_BITS: dict[WeightType, int] = {WeightType.Q4: 4, WeightType.Q8: 8}
# MatMulNBits takes a power-of-two block of at least 16 input channels.
BLOCK_SIZES = (16, 32, 64, 128, 256)


class SearchMode(StrEnum):
    DESIGN = "design"
    THOROUGH = "thorough"


class InputSource(StrEnum):
    SAMPLES = "samples"
    SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class VariantSpec:
    """Everything that determines a quantized file, given the source content.

    ``weight_type=None`` is the pre-processed FP32 model (no quantization).
    ``preprocess`` is the pre-processing path that produced the quantizer's
    input; it is part of the identity because it changes the output file.
    ``block_size`` is set exactly for the blockwise weight types (Q4, Q8).
    """

    weight_type: WeightType | None
    per_channel: bool = False
    reduce_range: bool = False
    op_types: tuple[str, ...] = ()  # empty: onnxruntime's default op set
    nodes_to_exclude: tuple[str, ...] = ()
    extra_options: Mapping[str, Any] = field(default_factory=dict)
    preprocess: str = ""
    block_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["weight_type"] = self.weight_type.value if self.weight_type else None
        data["op_types"] = list(self.op_types)
        data["nodes_to_exclude"] = list(self.nodes_to_exclude)
        data["extra_options"] = dict(sorted(self.extra_options.items()))
        if self.block_size is None:  # absent, so that every dynamic spec keeps the key it always had
            del data["block_size"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VariantSpec:
        weight = data.get("weight_type")
        return cls(
            weight_type=WeightType(weight) if weight else None,
            per_channel=bool(data.get("per_channel", False)),
            reduce_range=bool(data.get("reduce_range", False)),
            op_types=tuple(data.get("op_types") or ()),
            nodes_to_exclude=tuple(data.get("nodes_to_exclude") or ()),
            extra_options=dict(data.get("extra_options") or {}),
            preprocess=str(data.get("preprocess", "")),
            block_size=int(data["block_size"]) if data.get("block_size") is not None else None,
        )

    @classmethod
    def from_settings(cls, data: Mapping[str, Any]) -> VariantSpec:
        """A hand-written spec (a per-model ``pin``), checked: a typo must not quietly pin another variant.

        Raises ``ValueError`` naming the bad key. ``preprocess`` is refused: the
        engine records the pre-processing path that actually worked.
        """
        unknown = sorted(set(data) - set(_SETTING_TYPES))
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} (known: {', '.join(_SETTING_TYPES)})")
        for key, value in data.items():
            kind, description = _SETTING_TYPES[key]
            elements_ok = not isinstance(value, list) or all(isinstance(v, str) for v in value)
            if not isinstance(value, kind) or not elements_ok:
                raise ValueError(f"{key} must be {description}, not {value!r}")
        weights = ", ".join(w.value for w in WeightType)
        if "weight_type" not in data:
            raise ValueError(f'weight_type is required: one of {weights} (pin = "fp32" keeps FP32)')
        if data["weight_type"] not in set(WeightType):
            raise ValueError(f"weight_type {data['weight_type']!r}: one of {weights}")
        blockwise = WeightType(data["weight_type"]).blockwise
        sizes = ", ".join(str(b) for b in BLOCK_SIZES)
        if blockwise and data.get("block_size") not in BLOCK_SIZES:
            raise ValueError(f"weight_type {data['weight_type']} needs block_size: one of {sizes}")
        if not blockwise and "block_size" in data:
            raise ValueError(f"block_size applies only to weight_type Q4 or Q8, not {data['weight_type']}")
        return cls.from_dict(data)

    def key(self, ort_version: str) -> str:
        """Stable identity of the file this spec makes under ``ort_version``."""
        payload = json.dumps({"spec": self.to_dict(), "ort": ort_version}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        """A short human name, also used in output file names: ``u8s8-pc-matmul``."""
        if self.weight_type is None:
            return "fp32-opt"
        parts = [self.weight_type.value.lower()]
        if self.per_channel:
            parts.append("pc")
        if self.reduce_range:
            parts.append("rr")
        if self.op_types:
            parts.append("+".join(sorted(t.lower() for t in self.op_types)))
        if self.extra_options.get("EnableSubgraph"):
            parts.append("sub")
        if self.block_size is not None:
            parts.append(f"b{self.block_size}")
        if self.nodes_to_exclude:
            parts.append(f"x{len(self.nodes_to_exclude)}")
        return "-".join(parts)


# What a hand-written spec may say (VariantSpec.from_settings), with the type each key takes.
_SETTING_TYPES: dict[str, tuple[type, str]] = {
    "weight_type": (str, "a string"),
    "per_channel": (bool, "true or false"),
    "reduce_range": (bool, "true or false"),
    "op_types": (list, "a list of op type names"),
    "nodes_to_exclude": (list, "a list of node names"),
    "extra_options": (dict, "a table of quantize_dynamic extra_options"),
    "block_size": (int, "an integer (Q4 and Q8 only)"),
}


@dataclass(frozen=True)
class HostInfo:
    host_id: str
    hostname: str
    host_class: str
    arch: str
    cpu_model: str
    isa_flags: tuple[str, ...]
    usable_cores: int
    os: str
    ort_version: str
    onnx_version: str
    dqd_version: str
    declared: bool = False  # host_id and host_class come from configuration (allow_host_override)


@dataclass(frozen=True)
class Job:
    id: int
    kind: JobKind
    sha256: str
    host_class: str
    state: JobState
    attempts: int
    max_attempts: int
    priority: int
    idempotency_key: str
    source_path: str | None
    last_error: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    not_before: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    stage: str | None = None  # what the running attempt is doing now
    stage_started_at: datetime | None = None
    lost_leases: int = 0  # times the dqd process running it died or hung (not counted as attempts)
    waiting: str | None = None  # set by listings: why a queued job cannot start (see waiting_reason)


def waiting_reason(job: Job, live_classes: Collection[str]) -> str | None:
    """A queued job of a class with no live host waits for one: said, so it is not taken for stuck."""
    if job.state is JobState.QUEUED and job.host_class not in live_classes:
        return f"waiting: no host of class {job.host_class} has a heartbeat within worker.host_ttl_seconds"
    return None


@dataclass(frozen=True)
class ModelPath:
    id: int
    path: str
    sha256: str | None
    removed_at: datetime | None
    first_seen_at: datetime
    last_seen_at: datetime
    size_bytes: int | None
    mtime_ns: int | None
    refused_reason: str | None = None  # why dqd does not take what is at this path (then no sha256)


@dataclass(frozen=True)
class VariantRecord:
    id: int
    source_sha256: str
    spec: VariantSpec
    spec_key: str
    ort_version: str
    output_path: str | None
    output_sha256: str | None
    size_bytes: int | None
    quantize_seconds: float | None
    error: str | None
    created_at: datetime


@dataclass(frozen=True)
class DecisionRecord:
    id: int
    sha256: str
    host_class: str
    host_id: str | None
    ort_version: str
    search_mode: SearchMode  # the catalog column holds its value
    policy_version: str
    outcome: Outcome
    variant_id: int | None
    speedup: float | None
    speedup_ci: tuple[float, float] | None
    reasons: tuple[str, ...]
    details: Mapping[str, Any]
    error: str | None
    seconds: float | None
    created_at: datetime
    threads: int | None = None  # intra-op threads the variants were timed at
    path: str | None = None  # the path the engine was given (relative to the watched folder, or absolute)
    preflight_version: str | None = None  # None: decided before pre-fixes (policy.PREFLIGHT_VERSION)
    source_precision: str = "fp32"  # the model as given: fp32, fp16, bf16 or fp64
    plan_fingerprint: str | None = None  # the plan it was made under; None: before migration 0009


# --- What the engine measured and decided for one model (recorded by the catalog) ---


# Latency samples kept per benchmark (evenly thinned), measured and stored alike.
MAX_STORED_SAMPLES = 200


@dataclass(frozen=True)
class LatencyStats:
    median_ms: float
    p90_ms: float
    p99_ms: float
    rounds: int
    samples_ms: tuple[float, ...] = ()  # at most MAX_STORED_SAMPLES, for the report's distributions


@dataclass(frozen=True)
class BenchmarkResult:
    """One interleaved timing of ``spec`` (None: the shipped FP32) against the shipped FP32."""

    spec: VariantSpec | None
    threads: int
    latency: LatencyStats
    speedup: float | None  # FP32 latency / this latency; > 1 is faster
    speedup_ci: tuple[float, float] | None
    peak_rss_bytes: int | None = None
    step: str = ""  # which comparison this belongs to, e.g. "u8u8" or "ladder"
    foreign_load: float | None = None  # others' use of the CPU meanwhile (dqd.hostload); None: unknown
    load_source: str | None = None


@dataclass(frozen=True)
class AccuracyResult:
    spec: VariantSpec
    input_source: InputSource
    metrics: Mapping[str, Mapping[str, float]]  # output name -> metric name -> value
    passed: bool
    reason: str
    decisive: bool  # True for the source that decides the gate


@dataclass(frozen=True)
class VariantResult:
    spec: VariantSpec
    ort_version: str
    output_path: str | None
    output_sha256: str | None
    size_bytes: int | None
    quantize_seconds: float | None
    error: str | None = None
    notes: tuple[str, ...] = ()  # e.g. a quantizer retry with DefaultTensorType, or a reused file


@dataclass(frozen=True)
class EngineResult:
    path: str
    sha256: str
    outcome: Outcome
    selected: VariantSpec | None
    speedup: float | None
    speedup_ci: tuple[float, float] | None
    reasons: tuple[str, ...]
    error: str | None
    seconds: float
    search_mode: SearchMode  # the catalog column holds its value
    policy_version: str
    ort_version: str
    source_size_bytes: int | None = None
    variants: tuple[VariantResult, ...] = ()
    accuracy: tuple[AccuracyResult, ...] = ()
    benchmarks: tuple[BenchmarkResult, ...] = ()
    details: DecisionDetails = field(default_factory=DecisionDetails)  # what the decision rests on
    permanent_error: bool = True  # for the queue: retry only transient errors
    preflight_version: str | None = None  # policy.PREFLIGHT_VERSION: what preflight could repair
    source_precision: str | None = None  # the model as given (fp32, fp16, …); None: it could not be read
    plan_fingerprint: str | None = None  # ModelPlan.fingerprint() it was decided under; None: no plan
