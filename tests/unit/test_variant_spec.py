"""VariantSpec: names, identity (file keys) and hand-written pins, the blockwise types included."""

from __future__ import annotations

import pytest

from dqd.domain import VariantSpec, WeightType


def test_a_dynamic_spec_keeps_the_file_key_it_had_before_block_size_existed() -> None:
    # Recorded with the VariantSpec of commit 7b9e126: a changed key would re-quantize every catalog.
    spec = VariantSpec(
        WeightType.U8S8, per_channel=True, op_types=("Gemm", "MatMul"), preprocess="pre_process"
    )
    assert spec.key("1.32.0") == "7def716f9b224be3"
    assert "block_size" not in spec.to_dict()


def test_blockwise_specs_are_named_and_keyed_by_bits_and_block() -> None:
    q4_32 = VariantSpec(WeightType.Q4, block_size=32, preprocess="pp")
    q4_128 = VariantSpec(WeightType.Q4, block_size=128, preprocess="pp")
    assert q4_32.name == "q4-b32" and q4_128.name == "q4-b128"
    assert VariantSpec(WeightType.Q8, block_size=128).name == "q8-b128"
    assert q4_32.key("1.32.0") != q4_128.key("1.32.0")
    assert VariantSpec.from_dict(q4_32.to_dict()) == q4_32
    assert WeightType.Q4.blockwise and not WeightType.U8S8.blockwise


def test_a_blockwise_pin_is_checked_for_its_block_size() -> None:
    assert VariantSpec.from_settings({"weight_type": "Q4", "block_size": 32}).block_size == 32
    with pytest.raises(ValueError, match="needs block_size"):
        VariantSpec.from_settings({"weight_type": "Q8"})
    with pytest.raises(ValueError, match="needs block_size"):
        VariantSpec.from_settings({"weight_type": "Q4", "block_size": 48})
    with pytest.raises(ValueError, match="only to weight_type Q4 or Q8"):
        VariantSpec.from_settings({"weight_type": "U8S8", "block_size": 32})
    with pytest.raises(ValueError, match="block_size must be an integer"):
        VariantSpec.from_settings({"weight_type": "Q4", "block_size": "32"})
