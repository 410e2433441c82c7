"""Decoder layouts, generations and their judge (dqd.pipeline.decoder); a numpy toy is the model."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from dqd.pipeline.accuracy import GateThresholds
from dqd.pipeline.decoder import (
    CACHE_METRICS_NAME,
    Trace,
    empty_cache,
    find_decoder,
    generate,
    judge_generation,
)
from dqd.records import TensorInfo

THRESHOLDS = GateThresholds(0.95, 0.90, 0.35, 0.95)
VOCAB = 11


def optimum_layout(layers: int = 2) -> tuple[list[TensorInfo], list[TensorInfo]]:
    inputs = [
        TensorInfo("input_ids", "int64", ("batch", "seq")),
        TensorInfo("attention_mask", "int64", ("batch", "total_seq")),
        TensorInfo("position_ids", "int64", ("batch", "seq")),
    ]
    outputs = [TensorInfo("logits", "float32", ("batch", "seq", VOCAB))]
    for i in range(layers):
        for kind in ("key", "value"):
            inputs.append(TensorInfo(f"past_key_values.{i}.{kind}", "float32", ("batch", 2, "past_seq", 4)))
            outputs.append(TensorInfo(f"present.{i}.{kind}", "float32", ("batch", 2, "total_seq", 4)))
    return inputs, outputs


def test_the_optimum_layout_is_a_decoder() -> None:
    inputs, outputs = optimum_layout()
    layout = find_decoder(inputs, outputs, {"position_ids": 64})
    assert layout is not None
    assert (layout.input_ids, layout.logits, layout.attention_mask, layout.position_ids) == (
        "input_ids",
        "logits",
        "attention_mask",
        "position_ids",
    )
    assert [(p.input, p.output) for p in layout.pairs][:2] == [
        ("past_key_values.0.key", "present.0.key"),
        ("past_key_values.0.value", "present.0.value"),
    ]
    assert set(layout.sequence_axis.values()) == {2} and layout.vocab == VOCAB and layout.max_positions == 64


def test_past_key_n_names_pair_with_present_key_n() -> None:
    inputs = [
        TensorInfo("input_ids", "int64", ("batch", "seq")),
        TensorInfo("past_key.0", "float32", ("batch", 2, "past", 4)),
    ]
    outputs = [
        TensorInfo("logits", "float32", ("batch", "seq", "vocab")),
        TensorInfo("present_key.0", "float32", ("batch", 2, "total", 4)),
    ]
    layout = find_decoder(inputs, outputs, {"input_ids": 300})
    assert layout is not None and layout.vocab == 300 and layout.attention_mask is None


def test_an_rnn_with_a_hidden_state_is_not_a_decoder() -> None:
    inputs = [TensorInfo("x", "float32", ("batch", 8)), TensorInfo("h0", "float32", (1, "batch", 8))]
    outputs = [TensorInfo("y", "float32", ("batch", 8)), TensorInfo("hn", "float32", (1, "batch", 8))]
    assert find_decoder(inputs, outputs, {}) is None


def toy(noise: float = 0.0) -> tuple[list[str], object, list[dict[str, np.ndarray]]]:
    """A 'decoder' that predicts last token + 1 and appends one row of ones per token to its cache."""
    names = ["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"]
    seen: list[dict[str, np.ndarray]] = []
    rng = np.random.default_rng(1)

    def run(feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        seen.append(dict(feed))
        ids = feed["input_ids"]
        logits = np.zeros((1, ids.shape[1], VOCAB), np.float32)
        logits[0, np.arange(ids.shape[1]), (ids[0] + 1) % VOCAB] = 5.0
        logits += noise * rng.standard_normal(logits.shape).astype(np.float32)
        grown = np.ones((1, 2, ids.shape[1], 4), np.float32)
        caches = [
            np.concatenate([feed[f"past_key_values.{i // 2}.{k}"], grown], axis=2)
            for i, k in enumerate(["key", "value"] * 2)
        ]
        return [logits, *caches]

    return names, run, seen


def test_a_generation_grows_mask_positions_and_cache_and_feeds_the_greedy_token() -> None:
    inputs, outputs = optimum_layout()
    layout = find_decoder(inputs, outputs, {})
    assert layout is not None
    names, run, seen = toy()
    trace = generate(run, names, layout, np.array([3, 4, 5]), 3, empty_cache(layout, inputs, {}))  # type: ignore[arg-type]

    assert trace.tokens == [6, 7, 8]  # greedy: last + 1
    assert [f["input_ids"].tolist() for f in seen] == [[[3, 4, 5]], [[6]], [[7]], [[8]]]
    assert [f["attention_mask"].shape[1] for f in seen] == [3, 4, 5, 6]
    assert [f["position_ids"].tolist() for f in seen][1:] == [[[3]], [[4]], [[5]]]
    assert [f["past_key_values.1.value"].shape[2] for f in seen] == [0, 3, 4, 5]


def test_forced_tokens_are_fed_whatever_the_model_predicts() -> None:
    inputs, outputs = optimum_layout()
    layout = find_decoder(inputs, outputs, {})
    assert layout is not None
    names, run, seen = toy()
    trace = generate(run, names, layout, np.array([1]), 2, empty_cache(layout, inputs, {}), forced=[9, 0])  # type: ignore[arg-type]
    assert trace.tokens == [9, 0] and [f["input_ids"].tolist() for f in seen][1:] == [[[9]], [[0]]]


def judged(noise: float) -> tuple[dict[str, dict[str, float]], bool, str]:
    inputs, outputs = optimum_layout()
    layout = find_decoder(inputs, outputs, {})
    assert layout is not None
    cache = empty_cache(layout, inputs, {})
    names, exact, _ = toy()
    reference: Trace = generate(exact, names, layout, np.array([2, 3]), 6, cache)  # type: ignore[arg-type]
    _, noisy, _ = toy(noise)
    candidate = generate(noisy, names, layout, np.array([2, 3]), 6, cache, forced=reference.tokens)  # type: ignore[arg-type]
    return judge_generation(names, layout, reference, candidate, THRESHOLDS)


def test_the_same_generation_passes_and_the_reason_says_how_it_was_judged() -> None:
    metrics, passed, reason = judged(0.0)
    assert passed and metrics["logits"]["top1_agreement"] == 1.0 and metrics["logits"]["samples"] == 7.0
    assert CACHE_METRICS_NAME in metrics and "top1_agreement" not in metrics[CACHE_METRICS_NAME]
    assert reason.startswith("over a generation of 2 prompt tokens and 6 greedy decode steps")


def test_logits_that_drift_off_fail_the_gate() -> None:
    metrics, passed, reason = judged(3.0)
    assert not passed and "logits:" in reason and metrics["logits"]["cosine_mean"] < 0.95


def test_tokens_per_second_name_fp32s_range_when_its_runs_disagree() -> None:
    from dqd.domain import BenchmarkResult, LatencyStats, VariantSpec, WeightType
    from dqd.pipeline.decoder_run import DecoderEvaluation, TimingFeed, decoder_notes

    def timed(spec: VariantSpec | None, ms: float) -> BenchmarkResult:
        return BenchmarkResult(spec, 1, LatencyStats(ms, ms, ms, 10), None, None, 0, "ladder:1:x:decode@8")

    inputs, outputs = optimum_layout()
    layout = find_decoder(inputs, outputs, {})
    assert layout is not None
    evaluation = DecoderEvaluation(layout, None, None, (TimingFeed("decode@8", {}, 1),), {}, {})  # type: ignore[arg-type]
    q4 = VariantSpec(WeightType.Q4, block_size=32)
    apart = decoder_notes(evaluation, [timed(None, 0.16), timed(q4, 0.11), timed(None, 0.11)])
    assert apart[1] == (
        "decode step with a cache of 8 tokens: FP32 0.11-0.16 ms (6250-9091 tokens/s) over 2 runs; "
        "q4-b32 0.11 ms (9091 tokens/s)"
    )
    alike = decoder_notes(evaluation, [timed(None, 0.160), timed(q4, 0.11), timed(None, 0.158)])
    assert alike[1].startswith("decode step with a cache of 8 tokens: FP32 0.16 ms (6250 tokens/s); ")
