"""dqd's dynamically quantizable ops are onnxruntime's: an upgrade that changes them fails here, loudly."""

from __future__ import annotations

import onnxruntime
from onnxruntime.quantization.registry import IntegerOpsRegistry

from dqd.quantops import DYNAMIC_OPS, QUANTIZABLE_WEIGHT_INPUTS, WEIGHTLESS_REGISTRY_OPS


def test_weight_bearing_ops_match_onnxruntimes_integer_ops_registry() -> None:
    registry = set(IntegerOpsRegistry)
    weight_bearing = registry - WEIGHTLESS_REGISTRY_OPS
    added, removed = sorted(weight_bearing - DYNAMIC_OPS), sorted(DYNAMIC_OPS - weight_bearing)
    assert not added and not removed, (
        f"onnxruntime {onnxruntime.__version__}'s IntegerOpsRegistry differs from dqd.quantops.DYNAMIC_OPS:"
        f" onnxruntime quantizes {added} that dqd does not list, dqd lists {removed} that it does not"
        " quantize; update QUANTIZABLE_WEIGHT_INPUTS in dqd/quantops.py (which input holds each op's weight)"
        " and review the ladder rules that name ops (dqd/pipeline/ladder_rules.py)"
    )


def test_weightless_ops_are_still_in_the_registry() -> None:
    """A weightless op onnxruntime dropped would hide a weight-bearing one it added under the same name."""
    missing = sorted(WEIGHTLESS_REGISTRY_OPS - set(IntegerOpsRegistry))
    assert not missing, (
        f"onnxruntime {onnxruntime.__version__} no longer registers {missing}:"
        " drop them from WEIGHTLESS_REGISTRY_OPS in dqd/quantops.py"
    )


def test_one_definition() -> None:
    from dqd.pipeline import ladder, weights

    assert ladder.DYNAMIC_OPS is DYNAMIC_OPS
    assert weights.QUANTIZABLE_WEIGHT_INPUTS is QUANTIZABLE_WEIGHT_INPUTS


def test_the_ladders_op_groups_are_quantizable_ops() -> None:
    from dqd.pipeline.ladder_rules import CONV_OPS, MATMUL_OPS, PER_CHANNEL_OPS, SUBSET_REACH, WEIGHT_TYPE_OPS

    groups = [
        CONV_OPS,
        MATMUL_OPS,
        PER_CHANNEL_OPS,
        WEIGHT_TYPE_OPS,
        *(r for r in SUBSET_REACH.values() if r),
    ]
    strays = sorted({op for group in groups for op in group} - DYNAMIC_OPS)
    assert not strays, f"ladder_rules names ops the dynamic quantizer does not rewrite: {strays}"
