"""State pairs, feed fitting and stream judging, with plain functions standing in for sessions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from dqd.domain import InputSource
from dqd.pipeline.accuracy import GateThresholds
from dqd.pipeline.inputs import InputSet
from dqd.pipeline.stateful import (
    SAMPLE_RATE_HZ,
    StatePair,
    find_state_pairs,
    fit_feed,
    fit_input_set,
    judge_stream,
    run_stream,
    stack_steps,
    stream_feeds,
)
from dqd.records import TensorInfo

THRESHOLDS = GateThresholds(
    min_cosine_mean=0.95, min_cosine_worst=0.90, max_relative_l2=0.35, min_top1_agreement=0.95
)

SILERO_INPUTS = (
    TensorInfo("input", "float32", (None, None)),
    TensorInfo("state", "float32", (2, None, 128)),
    TensorInfo("sr", "int64", ()),
)
SILERO_OUTPUTS = (
    TensorInfo("output", "float32", (None, 1)),
    TensorInfo("stateN", "float32", (None, None, None)),
)


def t(
    name: str, shape: tuple[int | str | None, ...] | None = ("batch", 8), dtype: str = "float32"
) -> TensorInfo:
    return TensorInfo(name, dtype, shape)


# --- finding state pairs -----------------------------------------------------------------------


def test_silero_state_pairs_with_its_output_despite_a_lost_output_shape() -> None:
    assert find_state_pairs(SILERO_INPUTS, SILERO_OUTPUTS) == [StatePair("state", "stateN")]


@pytest.mark.parametrize(
    ("inp", "out"),
    [
        ("h0", "hn"),
        ("c_0", "c_n"),
        ("past_key_values.0.key", "present.0.key"),
        ("past_key_3", "present_key_3"),
        ("state_in", "state_out"),
        ("in_cache", "out_cache"),
        ("hidden", "hidden_next"),
        ("h", "hn"),
    ],
)
def test_naming_conventions_pair(inp: str, out: str) -> None:
    pairs = find_state_pairs([t("x"), t(inp)], [t("y"), t(out)])
    assert pairs == [StatePair(inp, out)]


def test_no_pair_without_a_matching_name_even_with_the_same_shape() -> None:
    assert find_state_pairs([t("input")], [t("output")]) == []
    assert find_state_pairs([t("x")], [t("x_logits")]) == []


def test_no_pair_when_dtype_rank_or_fixed_dims_differ() -> None:
    assert find_state_pairs([t("state")], [t("stateN", dtype="float16")]) == []
    assert find_state_pairs([t("state", (2, 4, 8))], [t("stateN", (2, 8))]) == []
    assert find_state_pairs([t("state", (2, 4, 8))], [t("stateN", (2, 4, 16))]) == []
    assert find_state_pairs([t("state", None)], [t("stateN")]) == []


def test_each_output_feeds_one_input() -> None:
    pairs = find_state_pairs([t("h0"), t("h")], [t("hn")])
    assert pairs == [StatePair("h0", "hn")]


# --- fitting synthesized feeds -----------------------------------------------------------------


def silero_feed(samples: int = 16) -> dict[str, Any]:
    return {
        "input": np.ones((4, samples), np.float32),
        "state": np.zeros((2, 16, 128), np.float32),  # the synthesizer guessed 16 for the unnamed batch dim
        "sr": np.array(230, np.int64),
    }


def test_fit_sets_the_sample_rate_and_the_state_batch() -> None:
    fitted = fit_feed(silero_feed(), SILERO_INPUTS, [StatePair("state", "stateN")])
    assert int(fitted["sr"]) == SAMPLE_RATE_HZ and fitted["sr"].dtype == np.int64
    assert fitted["state"].shape == (2, 4, 128) and not fitted["state"].any()
    assert fitted["input"].shape == (4, 16)


def test_fit_keeps_named_state_dims_unified_by_the_synthesizer() -> None:
    infos = [TensorInfo("x", "float32", ("steps", "batch", 8)), TensorInfo("h0", "float32", (1, "batch", 16))]
    feed = {"x": np.ones((4, 16, 8), np.float32), "h0": np.zeros((1, 16, 16), np.float32)}
    assert fit_feed(feed, infos, [StatePair("h0", "hn")])["h0"].shape == (1, 16, 16)


def test_fit_turns_numpy_scalars_into_arrays() -> None:
    fitted = fit_feed({"flag": np.bool_(True)}, [TensorInfo("flag", "bool", ())], [])
    assert isinstance(fitted["flag"], np.ndarray) and fitted["flag"].shape == ()


def test_fit_leaves_other_integers_alone() -> None:
    feed = {"ids": np.array([[5, 7]], np.int64), "rate_limit": np.array(3, np.int64)}
    infos = [TensorInfo("ids", "int64", (1, 2)), TensorInfo("rate_limit", "int64", ())]
    fitted = fit_feed(feed, infos, [])
    assert fitted["ids"].tolist() == [[5, 7]] and int(fitted["rate_limit"]) == 3


def test_fit_input_set_describes_the_change_and_keeps_unchanged_sets() -> None:
    inputs = InputSet(InputSource.SYNTHETIC, (silero_feed(),), "synthetic")
    fitted = fit_input_set(inputs, SILERO_INPUTS, [StatePair("state", "stateN")])
    assert fitted is not inputs and "fitted for streaming" in fitted.description
    plain = InputSet(InputSource.SYNTHETIC, ({"x": np.ones((2, 3), np.float32)},), "synthetic")
    assert fit_input_set(plain, [t("x")], []) is plain


# --- streams ------------------------------------------------------------------------------------


def test_stream_feeds_draw_new_signal_each_call_and_keep_integers_and_state() -> None:
    base = fit_feed(silero_feed(), SILERO_INPUTS, [StatePair("state", "stateN")])
    feeds = stream_feeds([base], [StatePair("state", "stateN")], 5, seed=1)
    assert len(feeds) == 5
    assert np.array_equal(feeds[0]["input"], base["input"])
    assert not np.array_equal(feeds[1]["input"], feeds[2]["input"])
    assert all(int(f["sr"]) == SAMPLE_RATE_HZ and not f["state"].any() for f in feeds)
    again = stream_feeds([base], [StatePair("state", "stateN")], 5, seed=1)
    assert all(np.array_equal(a["input"], b["input"]) for a, b in zip(feeds, again, strict=True))


def test_stream_feeds_from_several_samples_follow_their_order() -> None:
    base = [{"x": np.full((1, 2), i, np.float32)} for i in range(3)]
    feeds = stream_feeds(base, [], 5)
    assert [float(f["x"][0, 0]) for f in feeds] == [0, 1, 2, 0, 1]


def test_stream_feeds_reject_empty_streams() -> None:
    with pytest.raises(ValueError):
        stream_feeds([], [], 3)
    with pytest.raises(ValueError):
        stream_feeds([{"x": np.zeros(1)}], [], 0)


def accumulator(gain: float) -> Any:
    """A toy stateful model: state' = state + gain * x, output = state'.sum per row."""

    def run(feed: Mapping[str, np.ndarray]) -> Sequence[Any]:
        state = feed["state"] + gain * feed["x"]
        return [state.sum(axis=1, keepdims=True), state]

    return run


def toy_feeds(steps: int = 6) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [
        {"x": rng.uniform(0.5, 1.0, (2, 4)).astype(np.float32), "state": np.zeros((2, 4), np.float32)}
        for _ in range(steps)
    ]


PAIRS = [StatePair("state", "stateN")]
NAMES = ["out", "stateN"]


def test_run_stream_feeds_state_back() -> None:
    steps = run_stream(accumulator(1.0), NAMES, toy_feeds(3), PAIRS)
    feeds = toy_feeds(3)
    expected = feeds[0]["x"] + feeds[1]["x"] + feeds[2]["x"]
    assert np.allclose(steps[2][1], expected)


def test_one_call_looks_perfect_but_the_stream_reveals_drift() -> None:
    """The point of the stream: error that accumulates in the state."""
    reference = run_stream(accumulator(1.0), NAMES, toy_feeds(), PAIRS)
    drifting = run_stream(accumulator_with_leak(), NAMES, toy_feeds(), PAIRS)
    _, one_call_passed, _ = judge_stream(NAMES, reference[:1], drifting[:1], THRESHOLDS)
    metrics, passed, reason = judge_stream(NAMES, reference, drifting, THRESHOLDS)
    assert one_call_passed
    assert not passed and reason.startswith("over a stream of 6 calls with the state fed back")
    assert metrics["out"]["relative_l2"] > THRESHOLDS.max_relative_l2


def accumulator_with_leak() -> Any:
    """Wrong in how it carries state (as a badly quantized recurrent weight would be), right on one call."""

    def run(feed: Mapping[str, np.ndarray]) -> Sequence[Any]:
        state = 2.0 * feed["state"] + feed["x"]
        return [state.sum(axis=1, keepdims=True), state]

    return run


def test_identical_streams_pass() -> None:
    reference = run_stream(accumulator(1.0), NAMES, toy_feeds(), PAIRS)
    metrics, passed, _ = judge_stream(NAMES, reference, reference, THRESHOLDS)
    assert passed and metrics["out"]["cosine_worst"] == pytest.approx(1.0)


def test_stack_steps_puts_time_after_batch_and_skips_growing_outputs() -> None:
    steps = [[np.ones((2, 1)), np.ones((1, k))] for k in (1, 2, 3)]
    stacked = stack_steps(steps)
    assert stacked[0].shape == (2, 3, 1)
    assert stacked[1] is None
    scalars = stack_steps([[np.float32(1.0)], [np.float32(2.0)]])
    assert scalars[0].shape == (2,)
