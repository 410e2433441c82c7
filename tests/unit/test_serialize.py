"""The catalog's ``details`` JSON: only the keys of the stages that ran (dqd.serialize)."""

from __future__ import annotations

import math

from dqd.domain import InputSource, VariantSpec, WeightType
from dqd.records import DecisionDetails, DesignRecord, InputRecord, StepRecord
from dqd.serialize import catalog_details_json, plain_json

STEP = StepRecord("u8u8", None, True, InputSource.SAMPLES, 1.5, (1.4, 1.6), "significantly faster", None)


def test_unset_fields_are_left_out() -> None:
    assert catalog_details_json(DecisionDetails()) == {}
    assert catalog_details_json(DecisionDetails(excluded=True)) == {"excluded": True}
    assert catalog_details_json(DecisionDetails(pinned="fp32")) == {"pinned": "fp32"}
    assert catalog_details_json(DecisionDetails(failure="crash")) == {"failure": "crash"}


def test_an_unreadable_model_records_a_null_preflight() -> None:
    assert catalog_details_json(DecisionDetails(checked=True)) == {"preflight": None}


def test_a_design_record_is_plain_json_in_key_order() -> None:
    pin = VariantSpec(WeightType.U8S8, per_channel=True)
    details = DecisionDetails(
        inputs=(InputRecord(InputSource.SYNTHETIC, "1 synthetic feed"),),
        nodes_to_exclude=(),
        decision=DesignRecord(0.05, (STEP,), pinned=pin),
    )
    out = catalog_details_json(details)
    assert list(out) == ["inputs", "nodes_to_exclude", "decision"]
    assert out["inputs"] == [{"source": "synthetic", "description": "1 synthetic feed"}]
    assert out["nodes_to_exclude"] == []
    assert list(out["decision"]) == ["margin", "pinned", "steps"]
    assert out["decision"]["pinned"] == pin.to_dict()
    step = out["decision"]["steps"][0]
    assert step["gate_source"] == "samples" and step["speedup_ci"] == [1.4, 1.6]


def test_plain_json_drops_nan_and_tuples() -> None:
    assert plain_json({"a": (1.0, math.nan)}) == {"a": [1.0, None]}
