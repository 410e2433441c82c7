"""The typed record of one decision: what the engine read, measured and chose, and why.

Frozen dataclasses, each built complete by the code that knows its facts
(preflight, the policy, the ladder, the engine) and never edited afterwards.
:class:`DecisionDetails` bundles them into ``EngineResult.details``;
:mod:`dqd.serialize` turns it into the catalog's ``details`` JSON, whose keys
and values these fields name. The base layer holds them because the catalog
serializes what the pipeline builds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: dqd.domain imports this module (EngineResult.details)
    from dqd.domain import InputSource, VariantSpec


# --- what preflight read (dqd.pipeline.inspect) ---


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # numpy-style name ("float32", "int64", "bool") or the ONNX type text for non-tensors
    shape: tuple[int | str | None, ...] | None  # None: not a tensor or unknown rank

    @property
    def is_tensor(self) -> bool:
        return self.shape is not None


@dataclass(frozen=True)
class GraphSummary:
    """What preflight read from a model's graph; the catalog keeps it per model version."""

    path: str  # the file preflight read
    size_bytes: int  # the .onnx file alone, without external data
    ir_version: int
    opsets: dict[str, int]  # domain ("" is ai.onnx) -> opset version
    producer: str  # producer name and version, as the file says
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    op_histogram: dict[str, int]  # all graphs, subgraphs included
    quantizable_top_level: dict[str, int]  # op type -> nodes quantize_dynamic can rewrite, main graph
    quantizable_in_subgraphs: dict[str, int]  # the same inside If/Loop/Scan bodies
    control_flow: dict[str, int]  # If/Loop/Scan -> count
    initializer_types: dict[str, int]  # dtype name -> initializers of that type
    constant_node_weights: int  # Constant nodes holding float tensors (weights outside initializers)
    external_data: bool  # some tensors live in external data files
    vocab_sizes: dict[str, int] = field(default_factory=dict)  # integer input -> rows of the table it indexes


# --- the design two-step and a per-model pin (dqd.pipeline.policy) ---


@dataclass(frozen=True)
class StepRecord:
    """One candidate of the two-step (or the pinned variant) as the policy judged it."""

    variant: str  # the candidate's name, e.g. "u8s8"
    quantize_error: str | None  # why it could not be built; None: built
    gate_passed: bool | None  # the accuracy gate's verdict; None: not checked
    gate_source: InputSource | None  # the input source that decided the gate
    speedup: float | None  # FP32 latency / its latency; None: not timed
    speedup_ci: tuple[float, float] | None  # the speed-up's confidence interval
    speed: str | None  # its speed class (dqd.pipeline.policy.Speed's text); None: not timed
    benchmark_error: str | None  # why onnxruntime could not time it


@dataclass(frozen=True)
class DesignRecord:
    """The numbers behind a two-step decision, or a pin's (``details["decision"]``)."""

    margin: float  # the benchmark margin a speed-up's slow end must clear
    steps: tuple[StepRecord, ...]  # the candidates measured, in order
    pinned: VariantSpec | None = None  # the per-model pin, shipped whatever it measured; None: no pin


# --- the ladder, search = "thorough" (dqd.pipeline.ladder_select, dqd.pipeline.thorough) ---


@dataclass(frozen=True)
class RulesRecord:
    """The host rule set the ladder ran under (dqd.pipeline.ladder_rules)."""

    name: str  # e.g. "x86-vnni"
    version: str  # ladder_rules.RULES_VERSION
    host_classes: tuple[str, ...]  # the host classes the set applies to
    u8s8_conv_needs_u8u8_win: bool  # U8S8 Conv rungs only after a U8U8 Conv rung won
    evidence: str  # the measurements the order rests on
    pruning: Mapping[str, str]  # pruning rule id -> what it means
    blockwise_max_rows: int | None = None  # MatMulNBits rungs only up to this many rows; None: unbounded


@dataclass(frozen=True)
class TraitsRecord:
    """The model's quantizable op types, as the ladder planned for them."""

    quantizable: Mapping[str, int]  # op type -> count, main graph and subgraphs together
    in_subgraphs: Mapping[str, int]  # op type -> count inside If/Loop/Scan bodies
    conv_heavy: bool  # Conv outnumbers what dynamic quantization could help instead
    matmul_rows: int | None = None  # fewest activation rows a quantizable MatMul multiplies; None: unknown


@dataclass(frozen=True)
class RungRecord:
    """One rung the ladder built: gated and timed, or found byte-identical to an earlier one."""

    rung: int  # its index in the planned order
    variant: str  # the rung's name, e.g. "u8s8-pc"
    spec: VariantSpec  # what it was built from
    reaches: tuple[str, ...]  # the op types its spec rewrites in this model, sorted
    identical_to: str | None  # the earlier rung (or "the shipped FP32") with a byte-identical graph
    quantize_error: str | None  # why it could not be built
    gate_passed: bool | None  # the accuracy gate's verdict; None: not checked
    gate_source: InputSource | None  # the input source that decided the gate
    gate_reason: str | None  # the gate's reason, naming the numbers
    speedup: float | None  # FP32 latency / its latency (the playoff's for a finalist); None: not timed
    speedup_ci: tuple[float, float] | None  # the speed-up's confidence interval
    benchmark_error: str | None  # why onnxruntime could not time it
    seconds: float  # time spent on the rung, rounded to ms
    accuracy_metric: str | None = None  # the headline accuracy metric on the deciding source
    accuracy: float | None = None  # its value (worst output): ties within noise go to the higher
    size_bytes: int | None = None  # the variant file's size: the next tie-breaker
    screened_out: str | None = None  # why it was timed but not gated (it could not be selected)

    @property
    def status(self) -> str:
        return "identical" if self.identical_to else "tried"


@dataclass(frozen=True)
class SkippedRungRecord:
    """A rung the ladder did not try, and the rule that pruned it."""

    variant: str  # the rung's name
    rule: str  # a pruning rule id (ladder_rules.PRUNING_RULES)
    reason: str  # why, in words

    @property
    def status(self) -> str:
        return "skipped"


@dataclass(frozen=True)
class StatefulRecord:
    """How a stateful model (state outputs fed back as inputs) was gated."""

    pairs: tuple[tuple[str, str], ...]  # (state input, state output) fed back
    sequence_length: int | None = None  # calls per stream; None: the stream failed (see error)
    error: str | None = None  # FP32 failed over a stream, so rungs were gated per call


@dataclass(frozen=True)
class LadderRunRecord:
    """What only the ladder's loop knows: the host, the time it took, the stateful evaluation."""

    host_class: str  # the host class whose rule set ran
    seconds: float  # the whole ladder, rounded to ms
    stateful: StatefulRecord | None  # None: the model has no state to feed back


@dataclass(frozen=True)
class LadderRecord:
    """Everything the catalog keeps about a ladder (``details["decision"]`` in thorough mode)."""

    policy_version: str  # policy.LADDER_POLICY_VERSION
    rules: RulesRecord
    traits: TraitsRecord
    order: tuple[str, ...]  # the planned rungs' names, in the order tried
    tried: tuple[RungRecord, ...]  # rungs built, in the order tried
    skipped: tuple[SkippedRungRecord, ...]  # rungs planned away or pruned
    stop_reason: str  # why the ladder stopped
    margin: float  # the benchmark margin a speed-up's slow end must clear
    noise: float  # run-to-run noise a speed-up difference must exceed to count
    playoff: tuple[str, ...] | None  # the finalists timed together; None: no playoff ran
    run: LadderRunRecord | None = None  # set by the loop; None for the pure decision alone

    @property
    def rungs(self) -> tuple[RungRecord | SkippedRungRecord, ...]:
        """Tried rungs, then skipped ones: the ``rungs`` list of the JSON."""
        return (*self.tried, *self.skipped)


SearchRecord = DesignRecord | LadderRecord  # the numbers behind a decision, by search


# --- the whole record (EngineResult.details, dqd.pipeline.engine) ---


@dataclass(frozen=True)
class InputRecord:
    """One input set the candidates were judged on (the first decides)."""

    source: InputSource  # samples beside the model, or synthesized
    description: str  # what the set holds, in words


@dataclass(frozen=True)
class PrepareRecord:
    """How the model was pre-processed before quantization (dqd.pipeline.prepare)."""

    path: str  # the pre-processing path taken (VariantSpec.preprocess)
    folded_constants: int  # Constant nodes folded into initializers
    notes: tuple[str, ...]  # why earlier paths failed


@dataclass(frozen=True)
class DecisionDetails:
    """What a decision rests on, beyond its outcome and reasons: the catalog's ``details``.

    Every field is optional, set by the stage that got that far; an unset
    field (None, or False) is left out of the JSON. One engine run sets
    either the stages it ran (``checked`` and on), or ``failure``, or what
    the per-model settings decided (``excluded``, ``pinned``).
    """

    checked: bool = False  # preflight ran: the JSON has "preflight" (null when the file was unreadable)
    preflight: GraphSummary | None = None  # what preflight read from the graph
    inputs: tuple[InputRecord, ...] | None = None  # the input sets, the deciding one first
    prepare: PrepareRecord | None = None  # the pre-processing that produced the quantizer's input
    nodes_to_exclude: tuple[str, ...] | None = None  # per-model nodes_to_exclude the quantizer honoured
    decision: SearchRecord | None = None  # the search's numbers: the two-step's, a pin's or the ladder's
    failure: str | None = None  # how the isolated child failed (dqd.pipeline.isolate.ChildFailure)
    excluded: bool = False  # per-model settings exclude the model (exclude = true)
    pinned: str | None = None  # "fp32": per-model settings pin the model to FP32
