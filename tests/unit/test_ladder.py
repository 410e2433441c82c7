"""The variant ladder as pure functions: planning, pruning, the time budget, selection and advice."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dqd.domain import Outcome, VariantSpec, WeightType
from dqd.pipeline.ladder import (
    ModelTraits,
    Plan,
    Rung,
    RungResult,
    finalists,
    needs_playoff,
    needs_timing,
    next_step,
    plan_ladder,
)
from dqd.pipeline.ladder_rules import (
    DEFAULT_RULES,
    PRUNING_RULES,
    RULE_SETS,
    RULES_VERSION,
    HostRules,
    rules_for,
)
from dqd.pipeline.ladder_select import (
    Playoff,
    clearly_faster,
    decide_ladder,
    select_rung,
)
from dqd.pipeline.policy import (
    LADDER_POLICY_VERSION,
    POLICY_VERSION,
    CandidateMeasurement,
    policy_version_for,
)
from dqd.records import LadderRecord

VNNI = rules_for("x86_64-avx512vnni")
AVX2 = rules_for("x86_64-avx2")
MARGIN = 0.05
NOISE = 0.05

TRANSFORMER = ModelTraits({"MatMul": 36, "Gather": 3})
VAD = ModelTraits({}, {"Conv": 12, "LSTM": 4})  # everything inside If branches
CNN = ModelTraits({"Conv": 53, "MatMul": 1})
CONV_ONLY = ModelTraits({"Conv": 62})
MATMUL_ONLY = ModelTraits({"MatMul": 4})
RNN_MIX = ModelTraits({"LSTM": 2, "MatMul": 3, "Conv": 1})


def names(plan: Plan) -> list[str]:
    return [r.name for r in plan.rungs]


def measured(
    rung: Rung,
    *,
    gate: bool | None = True,
    ci: tuple[float, float] | None = None,
    seconds: float = 5.0,
    identical_to: str | None = None,
) -> RungResult:
    speedup = (ci[0] + ci[1]) / 2 if ci else None
    measurement = CandidateMeasurement(
        rung.spec, gate_passed=gate, gate_reason="r", gate_source="synthetic", speedup=speedup, speedup_ci=ci
    )
    return RungResult(rung, measurement, seconds, identical_to)


def rung_named(plan: Plan, name: str) -> Rung:
    return next(r for r in plan.rungs if r.name == name)


# --- rules as data ---------------------------------------------------------------------------


def test_host_classes_map_to_rule_sets() -> None:
    assert rules_for("x86_64-avx512vnni").name == "x86-vnni"
    assert rules_for("x86_64-amx").name == "x86-vnni"
    assert rules_for("x86_64-avx2").name == "x86-avx2"
    assert rules_for("x86_64-avx512").name == "x86-avx2"
    assert rules_for("aarch64-dotprod").name == "arm64-dotprod"
    assert rules_for("riscv64-generic") is DEFAULT_RULES


def test_no_host_class_is_claimed_by_two_rule_sets() -> None:
    claimed = [c for rules in RULE_SETS for c in rules.host_classes]
    assert len(claimed) == len(set(claimed))


def test_rules_record_their_version_and_evidence() -> None:
    record = VNNI.record()
    assert record.version == RULES_VERSION
    assert record.name == "x86-vnni"
    assert "measured" in record.evidence


@pytest.mark.parametrize("rules", [*RULE_SETS, DEFAULT_RULES], ids=lambda r: r.name)
def test_every_rule_set_tries_the_optimized_fp32_first(rules: HostRules) -> None:
    assert rules.order[0].weight is None


# --- planning from what the model contains -----------------------------------------------------


def test_vnni_tries_u8s8_first_and_per_channel_before_per_tensor() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    assert names(plan) == [
        "fp32-opt",
        "u8s8-pc",
        "u8s8",
        "u8s8-pc-gemm+matmul",
        "u8s8-gemm+matmul",
        "u8u8",
        "u8u8-pc",
        "u8u8-gemm+matmul",
        "q4-b128",
        "q4-b32",
        "q8-b128",
        "q8-b32",
    ]


def test_avx2_keeps_the_design_order_u8u8_first() -> None:
    order = names(plan_ladder(TRANSFORMER, AVX2, "pp"))
    assert order[:4] == ["fp32-opt", "u8u8", "u8u8-pc", "u8u8-gemm+matmul"]
    assert order.index("u8s8-pc") > order.index("u8u8-gemm+matmul")


def test_specs_carry_preprocess_and_op_types() -> None:
    plan = plan_ladder(TRANSFORMER, AVX2, "pre_process+fold")
    matmul = rung_named(plan, "u8u8-gemm+matmul")
    assert matmul.spec.op_types == ("Gemm", "MatMul")
    assert matmul.reaches == {"MatMul"}
    assert all(r.spec.preprocess == "pre_process+fold" for r in plan.rungs)
    assert rung_named(plan, "fp32-opt").spec.weight_type is None


def test_per_channel_does_not_reach_conv() -> None:
    plan = plan_ladder(CONV_ONLY, AVX2, "pp")
    assert names(plan) == ["fp32-opt", "u8u8", "u8s8"]
    skip = next(s for s in plan.skipped if s.name == "u8s8-pc")
    assert skip.rule == "same-effective-spec"
    assert "per_channel does not reach Conv" in skip.reason


def test_control_flow_models_get_enable_subgraph_and_one_lstm_rung() -> None:
    plan = plan_ladder(VAD, AVX2, "pp")
    assert names(plan) == ["fp32-opt", "u8u8-sub", "u8u8-lstm-sub", "u8s8-sub"]
    for rung in plan.rungs[1:]:
        assert rung.spec.extra_options == {"EnableSubgraph": True}
    lstm = rung_named(plan, "u8u8-lstm-sub")
    assert lstm.spec.op_types == ("LSTM",) and not lstm.quantizes_conv
    weight_skip = next(s for s in plan.skipped if s.name == "u8s8-lstm-sub")
    assert "LSTM weights are always int8" in weight_skip.reason


def test_models_without_control_flow_do_not_enable_subgraphs() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    assert all("EnableSubgraph" not in r.spec.extra_options for r in plan.rungs)


def test_lstm_matmul_subset_appears_only_when_it_differs() -> None:
    plan = plan_ladder(RNN_MIX, AVX2, "pp")
    order = names(plan)
    assert "u8u8-gemm+lstm+matmul" in order
    assert "u8u8-lstm" in order and "u8u8-gemm+matmul" in order
    assert rung_named(plan, "u8u8-gemm+lstm+matmul").reaches == {"LSTM", "MatMul"}


def test_a_subset_covering_the_whole_model_is_the_default_rung() -> None:
    plan = plan_ladder(MATMUL_ONLY, AVX2, "pp")
    dynamic = [r.name for r in plan.rungs if not r.blockwise]
    assert dynamic == ["fp32-opt", "u8u8", "u8u8-pc", "u8s8-pc", "u8s8"]
    reasons = " ".join(s.reason for s in plan.skipped)
    assert "covers every quantizable op" in reasons


def test_gather_only_reaches_are_not_planned_as_subsets() -> None:
    plan = plan_ladder(ModelTraits({"Gather": 2}), AVX2, "pp")
    assert names(plan) == ["fp32-opt", "u8u8"]  # weight_type does not change Gather tables


def test_rung_indices_follow_the_order() -> None:
    plan = plan_ladder(CNN, VNNI, "pp")
    assert [r.index for r in plan.rungs] == list(range(len(plan.rungs)))


def test_traits_from_histograms() -> None:
    assert CONV_ONLY.conv_heavy and CNN.conv_heavy and VAD.conv_heavy
    assert not TRANSFORMER.conv_heavy
    assert not ModelTraits({"Conv": 1, "MatMul": 2}).conv_heavy
    assert VAD.needs_subgraph and not CNN.needs_subgraph
    assert ModelTraits({"Gemm": 3, "Relu": 2}).ops == frozenset()
    assert VAD.record().quantizable == {"Conv": 12, "LSTM": 4}


# --- walking the ladder ------------------------------------------------------------------------


def walk(plan: Plan, outcomes: dict[str, RungResult | None], *, budget: float = 1e9) -> tuple[list[str], str]:
    """Drive next_step like the runner does; ``outcomes`` maps a rung name to what it measured."""
    results: list[RungResult] = []
    skipped: list[str] = []
    elapsed = 0.0
    while True:
        step = next_step(plan, results, skipped, elapsed=elapsed, budget=budget, margin=MARGIN)
        skipped += [s.name for s in step.skipped]
        if step.rung is None:
            assert step.stop_reason
            return [r.rung.name for r in results], step.stop_reason
        outcome = outcomes.get(step.rung.name) or measured(step.rung, ci=(0.95, 1.02))
        results.append(outcome)
        elapsed += outcome.seconds


def test_a_full_walk_tries_every_rung_in_order() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    tried, reason = walk(plan, {})
    # Every rung measures not faster than FP32 here, so each MatMulNBits block of 32 is pruned
    # behind its block of 128 (blockwise-behind); everything else is tried, in order.
    assert tried == [n for n in names(plan) if n not in ("q4-b32", "q8-b32")]
    assert reason.startswith("ladder complete")


def test_conv_rungs_stop_after_the_first_significantly_slower_one() -> None:
    plan = plan_ladder(CNN, AVX2, "pp")
    slow = measured(rung_named(plan, "u8u8"), ci=(0.55, 0.65))
    tried, _ = walk(plan, {"u8u8": slow})
    assert tried == [
        "fp32-opt",
        "u8u8",
        "u8u8-gemm+matmul",
        "u8s8-pc-gemm+matmul",
        "u8s8-gemm+matmul",
        "q4-b128",
        "q8-b128",
    ]
    step = next_step(plan, [measured(plan.rungs[0]), slow], [], elapsed=0.0, budget=1e9, margin=MARGIN)
    assert step.rung is not None and step.rung.name == "u8u8-gemm+matmul"
    # Conv rungs are pruned when reached, not before: u8u8-pc is next, and it quantizes Conv.
    assert [(s.name, s.rule) for s in step.skipped] == [("u8u8-pc", "conv-slow")]


def test_conv_slowness_prunes_with_the_rule_id() -> None:
    plan = plan_ladder(CONV_ONLY, DEFAULT_RULES, "pp")
    slow = measured(rung_named(plan, "u8u8"), ci=(0.4, 0.5))
    step = next_step(plan, [measured(plan.rungs[0]), slow], [], elapsed=0.0, budget=1e9, margin=MARGIN)
    assert step.rung is None
    assert [(s.name, s.rule) for s in step.skipped] == [("u8s8", "conv-slow")]
    assert "u8u8 quantized Conv" in step.skipped[0].reason


def test_a_conv_rung_that_is_not_slower_keeps_conv_rungs_alive() -> None:
    plan = plan_ladder(CONV_ONLY, DEFAULT_RULES, "pp")
    unresolved = measured(rung_named(plan, "u8u8"), ci=(0.97, 1.08))
    tried, _ = walk(plan, {"u8u8": unresolved})
    assert tried == ["fp32-opt", "u8u8", "u8s8"]


def test_u8s8_conv_needs_a_u8u8_conv_win_where_the_rules_say_so() -> None:
    plan = plan_ladder(CONV_ONLY, AVX2, "pp")
    not_faster = measured(rung_named(plan, "u8u8"), ci=(1.0, 1.04))
    tried, _ = walk(plan, {"u8u8": not_faster})
    assert tried == ["fp32-opt", "u8u8"]
    win = measured(rung_named(plan, "u8u8"), ci=(1.2, 1.3))
    tried, _ = walk(plan, {"u8u8": win})
    assert tried == ["fp32-opt", "u8u8", "u8s8"]


def test_vnni_skips_u8s8_conv_rungs_that_come_before_any_u8u8_conv_win() -> None:
    plan = plan_ladder(CNN, VNNI, "pp")
    tried, _ = walk(plan, {})
    assert "u8s8-pc" not in tried and "u8s8" not in tried
    assert "u8s8-pc-gemm+matmul" in tried and "u8u8" in tried


def test_the_time_budget_stops_the_ladder_and_names_the_rest() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    tried, reason = walk(plan, {}, budget=12.0)  # each rung "takes" 5 s
    assert tried == ["fp32-opt", "u8s8-pc"]
    assert reason.startswith("time budget")
    assert "u8s8, " in reason and "u8u8-gemm+matmul" in reason


def test_a_rung_that_just_fits_the_budget_runs() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    step = next_step(
        plan, [measured(plan.rungs[0], seconds=5.0)], [], elapsed=5.0, budget=10.0, margin=MARGIN
    )
    assert step.rung is not None  # 5 s used + about 5 s expected = the 10 s budget: not over it


def test_the_first_rung_always_runs_even_on_a_tiny_budget() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    step = next_step(plan, [], [], elapsed=0.0, budget=0.5, margin=MARGIN)
    assert step.rung is not None and step.rung.name == "fp32-opt"


def test_an_exhausted_budget_stops_before_any_rung() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    step = next_step(plan, [], [], elapsed=10.0, budget=5.0, margin=MARGIN)
    assert step.rung is None and step.stop_reason and "time budget" in step.stop_reason


def test_identical_rungs_do_not_count_towards_the_expected_cost() -> None:
    """A rung found identical to an earlier one took 0.1 s; the next real rung will take about 2 s.

    Counted in, it would halve the expected cost (1.05 s) and the ladder would start a rung
    that overruns a 4 s budget; left out, 2.1 s + 2 s > 4 s stops the ladder.
    """
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    results = [
        measured(plan.rungs[0], seconds=2.0),
        measured(plan.rungs[1], seconds=0.1, identical_to="fp32-opt"),
    ]
    step = next_step(plan, results, [], elapsed=2.1, budget=4.0, margin=MARGIN)
    assert step.rung is None and step.stop_reason
    assert "a rung takes about 2 s" in step.stop_reason
    roomy = next_step(plan, results, [], elapsed=2.1, budget=4.2, margin=MARGIN)
    assert roomy.rung is not None  # 2.1 s + 2 s fits: the budget is not stricter than it says


def test_needs_timing_only_for_passing_rungs_or_the_first_conv_look() -> None:
    plan = plan_ladder(CNN, AVX2, "pp")
    conv, matmul = rung_named(plan, "u8u8"), rung_named(plan, "u8u8-gemm+matmul")
    assert needs_timing(matmul, True, [])
    assert not needs_timing(matmul, False, [])
    assert needs_timing(conv, False, [])
    assert not needs_timing(conv, False, [measured(conv, gate=False, ci=(0.5, 0.6))])


# --- selection ---------------------------------------------------------------------------------


def test_the_fastest_acceptable_rung_wins() -> None:
    plan = plan_ladder(TRANSFORMER, AVX2, "pp")
    results = [
        measured(rung_named(plan, "u8u8"), ci=(1.30, 1.40)),
        measured(rung_named(plan, "u8s8-pc"), ci=(2.40, 2.60)),
    ]
    chosen, why = select_rung(results, margin=MARGIN, noise=NOISE)
    assert chosen is results[1]
    assert "clearly the fastest of 2" in why


def test_within_the_noise_margin_the_earlier_rung_wins_when_as_accurate_and_as_large() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    pc = measured(rung_named(plan, "u8s8-pc"), ci=(2.40, 2.50))  # 2.45
    tensor = measured(rung_named(plan, "u8s8"), ci=(2.50, 2.56))  # 2.53: within 5% of 2.45
    chosen, why = select_rung([pc, tensor], margin=MARGIN, noise=NOISE)
    assert chosen is pc
    assert "as fast as u8s8 (2.53x) (within the 5% run-to-run noise" in why
    assert why.endswith("preferred as the earlier rung, as accurate and as large")


def with_accuracy(result: RungResult, value: float, size: int = 1000) -> RungResult:
    return replace(
        result,
        measurement=replace(
            result.measurement, accuracy_metric="cosine_mean", accuracy=value, size_bytes=size
        ),
    )


def test_a_speed_tie_goes_to_the_more_accurate_rung_whatever_the_order() -> None:
    """minilm-l6 thorough on AVX2 (issue 13): U8U8 1.36x cosine 0.967 against U8S8-pc 1.39x cosine 0.984."""
    plan = plan_ladder(TRANSFORMER, AVX2, "pp")
    u8u8 = with_accuracy(measured(rung_named(plan, "u8u8"), ci=(1.25, 1.51)), 0.967)
    pc = with_accuracy(measured(rung_named(plan, "u8s8-pc"), ci=(1.28, 1.50)), 0.984)
    chosen, why = select_rung([u8u8, pc], margin=MARGIN, noise=NOISE)
    assert chosen is pc and u8u8.rung.index < pc.rung.index
    assert "preferred as the more accurate (cosine_mean 0.9840 against 0.9670 for u8u8)" in why


def test_accuracies_equal_to_four_places_tie_and_the_smaller_file_wins() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    pc = with_accuracy(measured(rung_named(plan, "u8s8-pc"), ci=(2.40, 2.50)), 0.99912, size=3 * 2**20)
    subset = with_accuracy(
        measured(rung_named(plan, "u8s8-pc-gemm+matmul"), ci=(2.42, 2.52)), 0.99914, size=2 * 2**20
    )
    chosen, why = select_rung([pc, subset], margin=MARGIN, noise=NOISE)
    assert chosen is subset
    assert "preferred as the smaller file (2.0 MiB against 3.0 MiB for u8s8-pc), as accurate" in why


def test_a_clearly_faster_rung_wins_over_a_more_accurate_one() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    accurate = with_accuracy(measured(rung_named(plan, "u8s8-pc"), ci=(1.50, 1.60)), 0.999)
    fast = with_accuracy(measured(rung_named(plan, "u8s8"), ci=(2.40, 2.50)), 0.97)
    chosen, why = select_rung([accurate, fast], margin=MARGIN, noise=NOISE)
    assert chosen is fast and "clearly the fastest of 2 qualifying rungs" in why


def test_a_wide_interval_does_not_make_a_later_rung_clearly_faster() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    tight = measured(rung_named(plan, "u8s8-pc"), ci=(2.44, 2.48))  # 2.46
    wide = measured(rung_named(plan, "u8s8-pc-gemm+matmul"), ci=(2.0, 3.5))  # 2.75, but overlaps
    chosen, _ = select_rung([tight, wide], margin=MARGIN, noise=NOISE)
    assert chosen is tight
    assert not clearly_faster(wide, tight, NOISE) and not clearly_faster(tight, wide, NOISE)


def test_the_choice_is_never_clearly_beaten_by_another_rung() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    a = measured(rung_named(plan, "u8s8-pc"), ci=(1.30, 1.40))  # 1.35
    b = measured(rung_named(plan, "u8s8"), ci=(1.38, 1.46))  # 1.42: ties with a, not clearly faster
    c = measured(rung_named(plan, "u8u8"), ci=(1.60, 1.70))  # 1.65: clearly beats a and b
    chosen, _ = select_rung([a, b, c], margin=MARGIN, noise=NOISE)
    assert chosen is c


def test_beyond_the_noise_margin_the_faster_later_rung_wins() -> None:
    plan = plan_ladder(TRANSFORMER, AVX2, "pp")
    early = measured(rung_named(plan, "u8u8"), ci=(1.30, 1.40))
    late = measured(rung_named(plan, "u8s8"), ci=(1.45, 1.55))
    chosen, _ = select_rung([early, late], margin=MARGIN, noise=NOISE)
    assert chosen is late


@pytest.mark.parametrize(
    ("gate", "ci"),
    [(False, (2.0, 2.2)), (True, (1.02, 1.20)), (True, (0.5, 0.6)), (None, (2.0, 2.2)), (True, None)],
    ids=["fails-gate", "unresolved", "slower", "gate-not-run", "not-timed"],
)
def test_unacceptable_rungs_are_never_selected(gate: bool | None, ci: tuple[float, float] | None) -> None:
    plan = plan_ladder(TRANSFORMER, AVX2, "pp")
    result = measured(rung_named(plan, "u8u8"), gate=gate, ci=ci)
    assert select_rung([result], margin=MARGIN, noise=NOISE) == (None, "")


def test_identical_rungs_are_not_selectable() -> None:
    plan = plan_ladder(TRANSFORMER, AVX2, "pp")
    copy = measured(rung_named(plan, "u8u8"), ci=(2.0, 2.2), identical_to="fp32-opt")
    assert select_rung([copy], margin=MARGIN, noise=NOISE)[0] is None


def test_decision_quantized_records_rungs_rules_and_stop_reason() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    results = [
        measured(plan.rungs[0], ci=(0.95, 1.01)),
        measured(rung_named(plan, "u8s8-pc"), ci=(2.4, 2.6)),
        measured(rung_named(plan, "u8s8"), gate=False, ci=None),
    ]
    decision = decide_ladder(plan, results, [], "ladder complete", margin=MARGIN, noise=NOISE)
    assert decision.outcome is Outcome.QUANTIZED
    assert decision.selected == rung_named(plan, "u8s8-pc").spec
    assert decision.policy_version == LADDER_POLICY_VERSION
    assert decision.speedup == pytest.approx(2.5)
    record = decision.record
    assert isinstance(record, LadderRecord)
    assert record.rules.name == "x86-vnni" and record.rules.version == RULES_VERSION
    assert set(record.rules.pruning) == set(PRUNING_RULES)
    statuses = {r.variant: r.status for r in record.rungs}
    assert statuses["u8s8-pc"] == "tried" and statuses["u8s8-pc-gemm+lstm+matmul"] == "skipped"
    assert record.stop_reason == "ladder complete"
    assert any("not timed: a rung that fails the gate" in line for line in decision.reasons)
    assert decision.reasons[-1] == "ladder stopped: ladder complete"


def test_decision_optimized_fp32_when_preprocessing_alone_wins() -> None:
    plan = plan_ladder(CNN, VNNI, "pp")
    results = [measured(plan.rungs[0], ci=(1.10, 1.20)), measured(rung_named(plan, "u8u8"), ci=(0.5, 0.6))]
    decision = decide_ladder(plan, results, [], "done", margin=MARGIN, noise=NOISE)
    assert decision.outcome is Outcome.OPTIMIZED_FP32
    assert decision.selected is not None and decision.selected.weight_type is None
    advice = [line for line in decision.reasons if line.startswith("advice:")]
    assert advice and "static quantization with calibration data" in advice[0]


def test_kept_fp32_on_a_conv_heavy_model_points_at_static_quantization() -> None:
    plan = plan_ladder(CONV_ONLY, AVX2, "pp")
    results = [measured(plan.rungs[0], ci=(0.98, 1.02)), measured(rung_named(plan, "u8u8"), ci=(0.5, 0.6))]
    decision = decide_ladder(plan, results, [], "done", margin=MARGIN, noise=NOISE)
    assert decision.outcome is Outcome.KEPT_FP32 and decision.selected is None
    assert decision.reasons[0].startswith("kept FP32")
    advice = next(line for line in decision.reasons if line.startswith("advice:"))
    assert "Conv-heavy" in advice and "u8u8 0.55x" in advice and "quantize_static" in advice


def test_a_selected_subset_that_leaves_conv_in_fp32_still_gets_the_advice() -> None:
    plan = plan_ladder(CNN, AVX2, "pp")
    matmul = measured(rung_named(plan, "u8u8-gemm+matmul"), ci=(1.1, 1.2))
    decision = decide_ladder(plan, [matmul], [], "done", margin=MARGIN, noise=NOISE)
    assert decision.outcome is Outcome.QUANTIZED
    assert any("leaves this Conv-heavy model's 53 Conv in FP32" in line for line in decision.reasons)


def test_no_advice_for_transformers_or_a_winning_conv_rung() -> None:
    plan = plan_ladder(TRANSFORMER, AVX2, "pp")
    decision = decide_ladder(plan, [measured(plan.rungs[0])], [], "done", margin=MARGIN, noise=NOISE)
    assert not any(line.startswith("advice:") for line in decision.reasons)
    conv_plan = plan_ladder(CONV_ONLY, AVX2, "pp")
    win = measured(rung_named(conv_plan, "u8u8"), ci=(1.3, 1.4))
    decision = decide_ladder(conv_plan, [win], [], "done", margin=MARGIN, noise=NOISE)
    assert decision.selected == win.rung.spec
    assert not any(line.startswith("advice:") for line in decision.reasons)


def test_a_conv_rung_is_selected_only_when_it_measured_faster_with_a_passing_gate() -> None:
    plan = plan_ladder(CNN, DEFAULT_RULES, "pp")
    conv_fast_failing = measured(rung_named(plan, "u8u8"), gate=False, ci=(1.5, 1.6))
    conv_unresolved = measured(rung_named(plan, "u8s8"), ci=(1.01, 1.3))
    decision = decide_ladder(
        plan, [conv_fast_failing, conv_unresolved], [], "done", margin=MARGIN, noise=NOISE
    )
    assert decision.outcome is Outcome.KEPT_FP32


def test_variant_spec_names_used_in_the_records() -> None:
    spec = VariantSpec(WeightType.U8S8, per_channel=True, op_types=("Gemm", "MatMul"))
    assert spec.name == "u8s8-pc-gemm+matmul"


def test_policy_version_follows_the_search_mode() -> None:
    assert policy_version_for("thorough") == LADDER_POLICY_VERSION
    assert policy_version_for("design") == POLICY_VERSION


# --- the playoff: finalists timed together ------------------------------------------------------


def test_finalists_are_gate_passing_rungs_that_may_beat_fp32() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    keep = measured(rung_named(plan, "u8s8-pc"), ci=(2.4, 2.6))
    unresolved = measured(rung_named(plan, "u8s8"), ci=(0.98, 1.10))
    not_faster = measured(rung_named(plan, "u8u8"), ci=(1.00, 1.04))
    failing = measured(rung_named(plan, "u8s8-gemm+matmul"), gate=False, ci=(2.4, 2.6))
    twin = measured(rung_named(plan, "u8u8-gemm+matmul"), ci=(2.0, 2.2), identical_to="u8u8")
    untimed = measured(rung_named(plan, "u8s8-pc-gemm+matmul"), ci=None)
    chosen = finalists([keep, unresolved, not_faster, failing, twin, untimed], MARGIN)
    assert chosen == [keep, unresolved]


def paired(base_ms: float, ratio: float, rounds: int = 60, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(base_ms / ratio * (1 + 0.01 * rng.standard_normal(rounds)))


def test_a_playoff_win_beyond_the_margin_selects_the_later_rung() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    early = measured(rung_named(plan, "u8s8-pc"), ci=(2.40, 2.50))
    late = measured(rung_named(plan, "u8s8"), ci=(2.60, 2.70))
    playoff = Playoff({"u8s8-pc": paired(26.5, 1.0), "u8s8": paired(26.5, 1.12, seed=1)}, MARGIN)
    chosen, why = select_rung([early, late], margin=MARGIN, noise=NOISE, playoff=playoff)
    assert chosen is late and "clearly the fastest" in why


def test_a_small_playoff_edge_keeps_the_earlier_rung() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    early = measured(rung_named(plan, "u8s8-pc"), ci=(2.40, 2.50))
    late = measured(rung_named(plan, "u8s8"), ci=(2.60, 2.70))  # separate runs alone would call this clear
    assert clearly_faster(late, early, NOISE)
    playoff = Playoff({"u8s8-pc": paired(26.5, 1.0), "u8s8": paired(26.5, 1.03, seed=1)}, MARGIN)
    chosen, why = select_rung([early, late], margin=MARGIN, noise=NOISE, playoff=playoff)
    assert chosen is early and "paired intervals in the playoff below 1.05x" in why


def test_the_decision_records_the_playoff() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    results = [
        measured(rung_named(plan, "u8s8-pc"), ci=(2.4, 2.5)),
        measured(rung_named(plan, "u8s8"), ci=(2.6, 2.7)),
    ]
    playoff = Playoff({"u8s8-pc": paired(26.5, 1.0), "u8s8": paired(26.5, 1.02, seed=1)}, MARGIN)
    decision = decide_ladder(plan, results, [], "done", margin=MARGIN, noise=NOISE, playoff=playoff)
    assert isinstance(decision.record, LadderRecord)
    assert decision.record.playoff == ("u8s8-pc", "u8s8")
    assert any(line.startswith("playoff: FP32 and u8s8-pc, u8s8") for line in decision.reasons)


def test_a_playoff_is_needed_for_two_finalists_or_one_unresolved() -> None:
    plan = plan_ladder(TRANSFORMER, VNNI, "pp")
    resolved = measured(rung_named(plan, "u8s8-pc"), ci=(2.4, 2.6))
    unresolved = measured(rung_named(plan, "u8s8"), ci=(1.02, 1.12))
    assert not needs_playoff([], MARGIN)
    assert not needs_playoff([resolved], MARGIN)
    assert needs_playoff([unresolved], MARGIN)
    assert needs_playoff([resolved, unresolved], MARGIN)


# --- MatMulNBits rungs (issue 13) ---------------------------------------------------------------

DECODE_STEP = ModelTraits({"MatMul": 49, "Gather": 2}, matmul_rows=1)  # one token per call
ENCODER_128 = ModelTraits({"MatMul": 36, "Gather": 3}, matmul_rows=128)


def blockwise_names(plan: Plan) -> list[str]:
    return [r.name for r in plan.rungs if r.blockwise]


@pytest.mark.parametrize("rules", [*RULE_SETS, DEFAULT_RULES], ids=lambda r: r.name)
def test_every_rule_set_ends_with_the_matmulnbits_rungs_block_128_first(rules: HostRules) -> None:
    plan = plan_ladder(TRANSFORMER, rules, "pp")
    assert names(plan)[-4:] == blockwise_names(plan) == ["q4-b128", "q4-b32", "q8-b128", "q8-b32"]
    q4 = rung_named(plan, "q4-b32")
    assert q4.spec.weight_type is WeightType.Q4 and q4.spec.block_size == 32
    assert q4.reaches == {"MatMul"}
    # MatMulNBitsQuantizer's own default op set (MatMul) and no quantize_dynamic options.
    assert q4.spec.op_types == () and dict(q4.spec.extra_options) == {} and not q4.spec.per_channel
    assert q4.spec.preprocess == "pp"


def test_models_without_matmul_get_no_matmulnbits_rungs() -> None:
    assert blockwise_names(plan_ladder(CONV_ONLY, AVX2, "pp")) == []
    assert blockwise_names(plan_ladder(VAD, AVX2, "pp")) == []  # Conv and LSTM only


def test_avx2_prunes_matmulnbits_where_every_matmul_multiplies_many_rows() -> None:
    plan = plan_ladder(ENCODER_128, AVX2, "pp")
    dynamic = [measured(r, ci=(1.3, 1.4)) for r in plan.rungs if not r.blockwise]
    step = next_step(plan, dynamic, [], elapsed=0.0, budget=1e9, margin=MARGIN)
    assert step.rung is None
    assert [(s.name, s.rule) for s in step.skipped] == [
        (name, "blockwise-rows") for name in ["q4-b128", "q4-b32", "q8-b128", "q8-b32"]
    ]
    assert (
        "at least 128 activation rows" in step.skipped[0].reason and "up to 4 rows" in step.skipped[0].reason
    )


@pytest.mark.parametrize(
    ("traits", "rules"),
    [
        (DECODE_STEP, AVX2),  # one row per MatMul: where MatMulNBits won
        (ModelTraits({"MatMul": 4}, matmul_rows=4), AVX2),  # at the bound: tried
        (ENCODER_128, VNNI),  # not measured on VNNI hosts: no shape rule, measurement decides
        (TRANSFORMER, AVX2),  # rows unknown: nothing to prune by
    ],
    ids=["decode-step", "at-the-bound", "vnni-unbounded", "rows-unknown"],
)
def test_matmulnbits_rungs_are_tried_where_no_shape_rule_prunes_them(
    traits: ModelTraits, rules: HostRules
) -> None:
    plan = plan_ladder(traits, rules, "pp")
    dynamic = [measured(r, ci=(1.3, 1.4)) for r in plan.rungs if not r.blockwise]
    step = next_step(plan, dynamic, [], elapsed=0.0, budget=1e9, margin=MARGIN)
    assert step.rung is not None and step.rung.name == "q4-b128"


def test_a_block_of_128_that_is_not_faster_prunes_only_its_own_bits_block_of_32() -> None:
    plan = plan_ladder(DECODE_STEP, AVX2, "pp")
    slow = measured(rung_named(plan, "q4-b128"), ci=(0.7, 0.8))
    tried, _ = walk(plan, {"q4-b128": slow, "q8-b128": measured(rung_named(plan, "q8-b128"), ci=(1.3, 1.4))})
    assert "q4-b32" not in tried and "q8-b128" in tried and "q8-b32" in tried
    step = next_step(plan, [slow], [r.name for r in plan.rungs[:-4]], elapsed=0.0, budget=1e9, margin=MARGIN)
    assert [(s.name, s.rule) for s in step.skipped] == [("q4-b32", "blockwise-behind")]
    assert "q4-b128 measured slower than FP32" in step.skipped[0].reason


def test_a_block_of_128_clearly_behind_the_leader_prunes_its_block_of_32() -> None:
    plan = plan_ladder(DECODE_STEP, AVX2, "pp")
    leader = measured(rung_named(plan, "u8s8-pc"), ci=(2.45, 2.6))
    behind = measured(rung_named(plan, "q4-b128"), ci=(2.0, 2.2))
    close = measured(rung_named(plan, "q4-b128"), ci=(2.3, 2.5))  # overlaps the leader: not behind
    done = [r.name for r in plan.rungs[:-4]]
    step = next_step(plan, [leader, behind], done, elapsed=0.0, budget=1e9, margin=MARGIN)
    assert ("q4-b32", "blockwise-behind") in [(s.name, s.rule) for s in step.skipped]
    assert "clearly behind u8s8-pc" in step.skipped[0].reason
    step = next_step(plan, [leader, close], done, elapsed=0.0, budget=1e9, margin=MARGIN)
    assert step.rung is not None and step.rung.name == "q4-b32"


def test_a_block_of_128_that_failed_the_gate_untimed_leaves_the_more_accurate_block_of_32() -> None:
    plan = plan_ladder(DECODE_STEP, AVX2, "pp")
    failed = measured(rung_named(plan, "q4-b128"), gate=False, ci=None)
    step = next_step(
        plan, [failed], [r.name for r in plan.rungs[:-4]], elapsed=0.0, budget=1e9, margin=MARGIN
    )
    assert step.rung is not None and step.rung.name == "q4-b32"


def test_traits_record_the_rows_and_rules_their_bound() -> None:
    assert DECODE_STEP.record().matmul_rows == 1
    assert AVX2.record().blockwise_max_rows == 4 and VNNI.record().blockwise_max_rows is None


# --- screening: the per-channel twin (issue 13 §3) ----------------------------------------------


def test_screening_prunes_a_rung_whose_per_channel_twin_was_not_faster() -> None:
    plan = plan_ladder(CNN, AVX2, "pp")
    pc = rung_named(plan, "u8s8-pc-gemm+matmul")
    not_faster = measured(pc, ci=(1.0, 1.04))
    step = next_step(
        plan,
        [not_faster],
        [r.name for r in plan.rungs[: pc.index]],
        elapsed=0.0,
        budget=1e9,
        margin=MARGIN,
        screen=True,
    )
    assert [(s.name, s.rule) for s in step.skipped][:1] == [("u8s8-gemm+matmul", "per-channel-twin")]
    assert "differs only in per_channel" in step.skipped[0].reason
    # Without screening the twin is timed as before; a twin that was fast keeps it alive either way.
    unscreened = next_step(
        plan, [not_faster], [r.name for r in plan.rungs[: pc.index]], elapsed=0.0, budget=1e9, margin=MARGIN
    )
    assert unscreened.rung is not None and unscreened.rung.name == "u8s8-gemm+matmul"
    fast = measured(pc, ci=(1.2, 1.3), gate=False)
    kept = next_step(
        plan,
        [fast],
        [r.name for r in plan.rungs[: pc.index]],
        elapsed=0.0,
        budget=1e9,
        margin=MARGIN,
        screen=True,
    )
    assert kept.rung is not None and kept.rung.name == "u8s8-gemm+matmul"


def test_a_rung_screened_out_behind_the_leader_prunes_its_twin_too() -> None:
    plan = plan_ladder(TRANSFORMER, AVX2, "pp")
    u8u8 = measured(rung_named(plan, "u8u8"), ci=(1.2, 1.3))
    behind = replace(
        u8u8, screened_out="clearly behind u8s8-pc in the same rounds (u8s8-pc 1.20-1.30x as fast)"
    )
    step = next_step(plan, [behind], ["fp32-opt"], elapsed=0.0, budget=1e9, margin=MARGIN, screen=True)
    assert [(s.name, s.rule) for s in step.skipped] == [("u8u8-pc", "per-channel-twin")]
    assert "clearly behind u8s8-pc" in step.skipped[0].reason


def test_a_smaller_blocks_slowness_says_nothing_about_a_larger_block() -> None:
    plan = plan_ladder(DECODE_STEP, AVX2, "pp")
    slow_small = measured(rung_named(plan, "q4-b32"), ci=(0.7, 0.8))
    done = [r.name for r in plan.rungs[:-4]]
    step = next_step(plan, [slow_small], done, elapsed=0.0, budget=1e9, margin=MARGIN)
    assert step.rung is not None and step.rung.name == "q4-b128"
