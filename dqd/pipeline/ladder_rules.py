"""The variant ladder's host-aware rules, as data in one place.

Everything here is a fact about onnxruntime's dynamic quantizer (version
pinned by the project) or a measured/argued property of a CPU family.  The
ladder (:mod:`dqd.pipeline.ladder`) reads these tables; it holds no
host-specific constants of its own.  Change a rule here, bump
:data:`RULES_VERSION`, and every decision recorded afterwards names the new
version (the catalog's ``details["decision"]["rules"]``, :class:`dqd.records.RulesRecord`).

Quantizer facts (onnxruntime 1.32, ``quantization/registry.py`` and
``operators/*.py``; they do not depend on the CPU):

* Dynamic quantization rewrites Conv (ConvInteger), MatMul (MatMulInteger),
  Attention, LSTM (DynamicQuantizeLSTM), Gather and EmbedLayerNormalization.
  Gemm is *not* in the dynamic registry: naming it in an op subset is harmless
  and keeps the subset meaningful when a future onnxruntime adds it.
* ``per_channel`` reaches only MatMul and Attention weights
  (``op_level_per_channel=True``); ConvInteger calls ``quantize_weight``
  without it, so per-channel Conv files are byte-identical to per-tensor ones.
* LSTM weights are always quantized per channel to int8
  (``quantize_weight_per_channel(..., INT8)``): ``weight_type`` and
  ``per_channel`` have no effect on an LSTM-only variant.
* Gather tables are quantized like activations (uint8, per tensor) whatever
  the weight type.
* If/Loop/Scan bodies are quantized only with ``EnableSubgraph``.

MatMulNBits facts (``quantization/matmul_nbits_quantizer.py``): the blockwise
quantizer rewrites only MatMul nodes whose weight is a 2-D initializer (or
N-D with unit leading dims), in every subgraph, without ``EnableSubgraph``;
Attention, Gemm, Conv and LSTM stay FP32. At ``accuracy_level`` 4 the CPU
kernel quantizes activations to int8 per block at run time, and its speed
depends on how many activation rows each MatMul multiplies (a GEMV for one
token, a GEMM for a sequence): the host rules prune by that shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dqd.domain import WeightType
from dqd.records import RulesRecord

# The one number to bump when a rule changes: the ladder's policy version
# (pipeline.policy.LADDER_POLICY_VERSION) derives from it, so the two cannot drift.
RULES_REVISION = 3  # 3: MatMulNBits (Q4/Q8) rungs; 2: U8U8 per-channel rung, ties broken by accuracy
RULES_VERSION = f"ladder-rules/{RULES_REVISION}"

# --- quantizer facts --------------------------------------------------------------------------

PER_CHANNEL_OPS = frozenset({"MatMul", "Attention"})  # the only ops per_channel changes
WEIGHT_TYPE_OPS = frozenset({"Conv", "MatMul", "Attention"})  # the only ops weight_type changes
MATMUL_OPS = frozenset({"MatMul", "Attention"})  # what a "MatMul/Gemm" subset reaches in practice
CONV_OPS = frozenset({"Conv"})
BLOCKWISE_OPS = frozenset({"MatMul"})  # what MatMulNBitsQuantizer rewrites


class Subset(StrEnum):
    """Which op types a rung quantizes."""

    ALL = "all"  # onnxruntime's default op set
    MATMUL = "matmul"  # MatMul/Gemm only: Conv and Gather stay FP32
    LSTM = "lstm"  # LSTM only
    LSTM_MATMUL = "lstm+matmul"


# ``op_types_to_quantize`` per subset; empty means the quantizer's default set.
SUBSET_OP_TYPES: dict[Subset, tuple[str, ...]] = {
    Subset.ALL: (),
    Subset.MATMUL: ("Gemm", "MatMul"),
    Subset.LSTM: ("LSTM",),
    Subset.LSTM_MATMUL: ("Gemm", "LSTM", "MatMul"),
}
# What each subset can reach among dqd.quantops.DYNAMIC_OPS (None: everything the model has).
SUBSET_REACH: dict[Subset, frozenset[str] | None] = {
    Subset.ALL: None,
    Subset.MATMUL: MATMUL_OPS,
    Subset.LSTM: frozenset({"LSTM"}),
    Subset.LSTM_MATMUL: MATMUL_OPS | {"LSTM"},
}


@dataclass(frozen=True)
class RungTemplate:
    """One rung before it meets a model: ``weight=None`` is the pre-processed FP32."""

    weight: WeightType | None
    subset: Subset = Subset.ALL
    per_channel: bool = False
    block_size: int | None = None  # the blockwise (Q4/Q8) rungs' block of input channels


@dataclass(frozen=True)
class HostRules:
    """How the ladder runs on one family of host classes.

    ``order`` is the order rungs are tried in, and the last tie-breaker
    among variants equally fast, accurate and large.  ``u8s8_conv_needs_u8u8_win``:
    try a U8S8 rung that quantizes Conv only after a U8U8 Conv rung measured
    significantly faster.  ``blockwise_max_rows``: try the MatMulNBits rungs
    only when some quantizable MatMul multiplies at most this many activation
    rows on the deciding timing feed (None: whatever the shape, pruned by
    measurement only).
    """

    name: str
    host_classes: tuple[str, ...]
    order: tuple[RungTemplate, ...]
    u8s8_conv_needs_u8u8_win: bool
    evidence: str
    blockwise_max_rows: int | None = None

    def record(self) -> RulesRecord:
        """The rule set as a decision records it: with its version and the pruning rules' meanings."""
        return RulesRecord(
            name=self.name,
            version=RULES_VERSION,
            host_classes=self.host_classes,
            u8s8_conv_needs_u8u8_win=self.u8s8_conv_needs_u8u8_win,
            evidence=self.evidence,
            pruning=dict(PRUNING_RULES),
            blockwise_max_rows=self.blockwise_max_rows,
        )


_U8U8 = WeightType.U8U8
_U8S8 = WeightType.U8S8
_FP32_OPT = RungTemplate(None)

# MatMulNBits, fastest first: block 128 was at least as fast as block 32 at the same bits on every
# shape measured (AVX2, 1 thread, issue 13: tests/perf/blockwise_rows.py's MatMul stack at 1 to 128
# rows, 4.70x vs 4.76x at 1 row and ahead from 2 rows on; minilm-l6 at 128 tokens 0.86x vs 0.85x; a
# GPT-2-small decode step 3.04x vs 2.96x), so when block 128 is behind, block 32 is too (pruning rule
# blockwise-behind); 4 bits were faster than 8 here, which other hosts may not share, so 8 bits get
# their own try.  Smaller blocks and 8 bits are the more accurate (minilm-l6 real-sentence embedding
# cosine: 4-bit b128 0.954, b32 0.971; 8-bit b128 0.9992).
_BLOCKWISE = (
    RungTemplate(WeightType.Q4, block_size=128),
    RungTemplate(WeightType.Q4, block_size=32),
    RungTemplate(WeightType.Q8, block_size=128),
    RungTemplate(WeightType.Q8, block_size=32),
)


def _weight_block(weight: WeightType) -> tuple[RungTemplate, ...]:
    """One weight type's rungs: whole model, then op subsets.

    Per-channel comes *before* per-tensor for U8S8: it changes only the
    MatMul weight scales, applied after integer accumulation, so it costs no
    measurable time (issue 6, AVX2: 0.65x vs 0.67x latency on minilm-l6;
    this project's AVX512-VNNI host: 2.49x vs 2.51x speed-up) and it was the
    more accurate of the two in every measurement (minilm-l6 embedding
    cosine 0.991 vs 0.961 on AVX2, output cosine 0.983 vs 0.959 on VNNI).
    Within the noise margin the more accurate rung wins
    (:func:`dqd.pipeline.ladder_select.select_rung`), then the earlier. U8U8
    per-channel follows U8U8: on AVX2 it measured real-sentence embedding
    cosine 0.994 against 0.981 per tensor for minilm-l6 at the same latency
    (0.75 vs 0.76 of FP32, issue 13); where per_channel reaches no op of the
    model the rung is not built (same-effective-spec).
    """
    if weight is _U8U8:
        return (
            RungTemplate(_U8U8),
            RungTemplate(_U8U8, per_channel=True),
            RungTemplate(_U8U8, Subset.MATMUL),
            RungTemplate(_U8U8, Subset.LSTM),
            RungTemplate(_U8U8, Subset.LSTM_MATMUL),
        )
    return (
        RungTemplate(_U8S8, per_channel=True),
        RungTemplate(_U8S8),
        RungTemplate(_U8S8, Subset.MATMUL, per_channel=True),
        RungTemplate(_U8S8, Subset.MATMUL),
        RungTemplate(_U8S8, Subset.LSTM),  # collapses onto the U8U8 LSTM rung: LSTM weights are int8 anyway
        RungTemplate(_U8S8, Subset.LSTM_MATMUL, per_channel=True),
        RungTemplate(_U8S8, Subset.LSTM_MATMUL),
    )


# The pre-processed FP32 is tried first: every variant is built from it, it
# costs no quantization, and as the simplest candidate it wins speed ties.
_U8U8_FIRST = (_FP32_OPT, *_weight_block(_U8U8), *_weight_block(_U8S8), *_BLOCKWISE)
_U8S8_FIRST = (_FP32_OPT, *_weight_block(_U8S8), *_weight_block(_U8U8), *_BLOCKWISE)

RULE_SETS: tuple[HostRules, ...] = (
    HostRules(
        name="x86-vnni",
        host_classes=("x86_64-amx", "x86_64-avx512vnni", "x86_64-avxvnni"),
        # VNNI's vpdpbusd multiplies uint8 activations by *int8* weights in one
        # instruction without the 16-bit saturation of AVX2's vpmaddubsw, so
        # U8S8 is the native, exact-accumulating path; U8U8 needs widening.
        order=_U8S8_FIRST,
        # Measured here: ppocr-cls U8S8 ConvInteger 0.13x (7.7x slower), U8U8 0.62x; magika
        # U8S8 0.31x, U8U8 0.76x.  VNNI speeds up MatMul, not onnxruntime's int8-weight Conv path.
        u8s8_conv_needs_u8u8_win=True,
        evidence=(
            "measured on an AMD EPYC with avx512_vnni (2 cores, onnxruntime 1.32, 1 thread): "
            "minilm-l6 U8S8 2.5x vs U8U8 1.4x; U8S8 Conv 3-8x slower than FP32 (ppocr-cls, magika); "
            "AMX and AVX-VNNI hosts assumed alike (same u8 x s8 dot-product instruction), unmeasured; "
            "MatMulNBits not measured on these hosts: tried whatever the shape, pruned by measurement"
        ),
    ),
    HostRules(
        name="x86-avx2",
        host_classes=("x86_64-avx512", "x86_64-avx2", "x86_64-sse4", "x86_64-generic"),
        order=_U8U8_FIRST,
        # Issue 6: U8S8 ConvInteger ran 3.7-8.9x slower than FP32 on AVX2, U8U8
        # 1.0-2.1x slower; U8S8 Conv never won where U8U8 Conv had lost.
        u8s8_conv_needs_u8u8_win=True,
        # Issue 13, AVX2-only AMD EPYC, onnxruntime 1.32, 1 thread, tests/perf/blockwise_rows.py (six
        # 768x3072 MatMul pairs): MatMulNBits 4-bit block 128 against U8S8 per-channel, by activation
        # rows per MatMul: 1 row 4.70x vs 3.43x, 2 rows 4.26x vs 2.93x, 4 rows 2.67x vs 2.88x, 8 rows
        # 1.93x vs 2.65x, 128 rows 0.98x vs 1.79x; an exploratory run at 2 threads crossed over alike.
        blockwise_max_rows=4,
        evidence=(
            "measured on an AVX2-only AMD EPYC over twelve models (issue 6, onnxruntime 1.32, 1 thread); "
            "MatMulNBits beat dynamic int8 only at 1-2 activation rows per MatMul and lost from 4 rows on "
            "(issue 13: 4.70x vs 3.43x at 1 row, 0.98x vs 1.79x at 128; minilm-l6 at 128 tokens 0.86x vs "
            "1.43x); "
            "AVX-512 without VNNI uses the same vpmaddubsw kernels and is assumed alike, unmeasured"
        ),
    ),
    HostRules(
        name="arm64-dotprod",
        host_classes=("aarch64-i8mm", "aarch64-dotprod"),
        # udot/sdot take u8 x u8 and s8 x s8 natively; onnxruntime shifts a
        # U8S8 pair to fit, so neither type is known to win: keep the design order.
        order=_U8U8_FIRST,
        u8s8_conv_needs_u8u8_win=False,
        evidence="not measured: the design's U8U8-first order; pruning from this host's own measurements",
    ),
)
# Unknown classes (aarch64-neon, riscv64-generic, ...): the design order, no host-specific pruning.
DEFAULT_RULES = HostRules(
    name="default",
    host_classes=(),
    order=_U8U8_FIRST,
    u8s8_conv_needs_u8u8_win=False,
    evidence="no rule set for this host class: the design's U8U8-first order, pruning from measurements only",
)


def rules_for(host_class: str) -> HostRules:
    """The rule set whose classes include ``host_class`` (e.g. ``x86_64-avx512vnni``), else the default."""
    for rules in RULE_SETS:
        if host_class in rules.host_classes:
            return rules
    return DEFAULT_RULES


# --- pruning rules (host independent; the ladder cites these ids in its records) ----------------

PRUNING_RULES: dict[str, str] = {
    "same-effective-spec": (
        "a rung that would write the same quantization as an earlier one is not built (per_channel does "
        "not reach Conv, LSTM weights are always int8, a subset covering every op is the whole model)"
    ),
    "identical-graph": "a built rung whose graph is byte-identical to an earlier one is not gated or timed",
    "conv-slow": "after the first Conv-quantizing rung is significantly slower than FP32, Conv rungs stop",
    "u8s8-conv-needs-u8u8-win": "where U8S8 ConvInteger is known slow, it needs a U8U8 Conv win first",
    "time-budget": "no new rung starts when the next one is not expected to finish within the time budget",
    "per-channel-twin": (
        "with ladder.screen, a rung is not tried when its per-channel twin (the same quantization but for "
        "per_channel, which only rescales after integer accumulation: the same speed) was too slow to win"
    ),
    "blockwise-rows": (
        "where the host's rules bound it, MatMulNBits rungs are not tried when every quantizable MatMul "
        "multiplies more activation rows on the deciding timing feed than MatMulNBits was measured to win at"
    ),
    "blockwise-behind": (
        "after a MatMulNBits rung measured not faster than FP32, or clearly behind the fastest acceptable "
        "rung, the rungs with its weight bits and a smaller block (slower in every measurement) are not tried"
    ),
}
