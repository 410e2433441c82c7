"""The pure picks (dqd.choice): what to load, and the headline accuracy number."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from dqd.choice import (
    BestChoice,
    ModelErrored,
    NoDecision,
    RecordedDecision,
    choose_best,
    headline_accuracy,
)
from dqd.domain import Outcome
from dqd.errors import NotFound

WHEN = datetime(2026, 6, 1, tzinfo=UTC)
SHA = "ab" * 32


def quantized(decision_id: int, threads: int | None, variant: str = "u8s8") -> RecordedDecision:
    return RecordedDecision(
        decision_id, Outcome.QUANTIZED, WHEN, threads, variant=variant, variant_output_path=f"/out/{variant}"
    )


def pick(
    candidates: list[RecordedDecision], threads: int | None = None, path: str | None = "m.onnx"
) -> BestChoice:
    return choose_best(
        candidates,
        model_path=path,
        sha256=SHA,
        host_class="x86_64-avx2",
        ort_version="1.32.0",
        threads=threads,
    )


def test_no_candidates_is_no_decision_naming_the_model() -> None:
    with pytest.raises(NoDecision, match=re.escape("m.onnx on x86_64-avx2 under onnxruntime 1.32.0")):
        pick([], threads=4)
    with pytest.raises(NoDecision, match=SHA):
        pick([], path=None)


def test_without_a_configured_count_the_latest_wins() -> None:
    best = pick([quantized(3, 2, "u8u8"), quantized(5, 8, "u8s8"), quantized(4, 4)])
    assert (best.decision_id, best.variant, best.load_path) == (5, "u8s8", "/out/u8s8")
    assert best.at_configured_threads and best.note is None and best.threads == 8


def test_the_latest_at_the_configured_count_beats_a_later_one_at_another() -> None:
    best = pick([quantized(7, 1, "u8u8"), quantized(5, 4, "u8s8")], threads=4)
    assert (best.decision_id, best.variant, best.threads) == (5, "u8s8", 4)
    assert best.at_configured_threads and best.note is None


def test_a_decision_that_timed_nothing_holds_at_any_count() -> None:
    skipped = RecordedDecision(6, Outcome.SKIPPED, WHEN, None)
    best = pick([quantized(5, 4), skipped, quantized(7, 2)], threads=4)
    assert best.decision_id == 6 and best.outcome is Outcome.SKIPPED and best.is_original


def test_none_at_the_configured_count_falls_back_to_the_latest_with_a_note() -> None:
    best = pick([quantized(3, 2, "u8u8"), quantized(5, 8, "u8s8")], threads=4)
    assert (best.decision_id, best.variant, best.threads) == (5, "u8s8", 8)
    assert not best.at_configured_threads
    assert best.note == (
        "no decision for m.onnx on x86_64-avx2 timed at 4 threads (benchmark.threads); "
        "this one was timed at 8"
    )


def test_kept_fp32_loads_the_original() -> None:
    kept = RecordedDecision(9, Outcome.KEPT_FP32, WHEN, 4)
    best = pick([quantized(2, 4), kept], threads=4)
    assert best.is_original and best.variant is None and best.load_path == "m.onnx"
    assert best.outcome is Outcome.KEPT_FP32


def test_the_latest_in_error_is_an_error_not_an_older_variant() -> None:
    errored = RecordedDecision(9, Outcome.ERROR, WHEN, None, error="truncated protobuf")
    with pytest.raises(
        ModelErrored, match=re.escape("m.onnx ended in error on x86_64-avx2: truncated protobuf")
    ):
        pick([quantized(2, 4), errored], threads=4)
    with pytest.raises(ModelErrored, match="no message"):
        pick([RecordedDecision(1, Outcome.ERROR, WHEN, None)])


def test_a_selected_variant_without_a_file_is_not_found() -> None:
    lost = RecordedDecision(3, Outcome.QUANTIZED, WHEN, 4, variant="u8s8", variant_output_path=None)
    with pytest.raises(NotFound, match="selected variant u8s8 has no output file"):
        pick([lost])


def test_a_removed_path_is_named_as_the_decision_recorded_it() -> None:
    kept = RecordedDecision(1, Outcome.KEPT_FP32, WHEN, 4, recorded_path="old/m.onnx")
    best = pick([kept], path=None)
    assert best.model == best.load_path == "old/m.onnx"
    assert pick([RecordedDecision(1, Outcome.KEPT_FP32, WHEN, 4)], path=None).model == SHA


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        (None, (None, None)),
        ({}, (None, None)),
        ({"out": {"cosine_mean": 0.99, "cosine_worst": 0.9}}, ("cosine_mean", 0.99)),
        ({"a": {"cosine_mean": 0.99}, "b": {"cosine_mean": 0.95}}, ("cosine_mean", 0.95)),  # worst output
        ({"a": {"cosine_worst": 0.9}, "b": {"cosine_mean": 0.97}}, ("cosine_mean", 0.97)),  # preferred name
        ({"a": {"top1_agreement": 1}}, ("top1_agreement", 1.0)),
        ({"a": {"mean_cosine_x": 0.8, "max_abs": 2.0}}, ("mean_cosine_x", 0.8)),  # any cosine-like
        ({"a": {"max_abs": 2.0}}, (None, None)),
        ({"a": {"cosine_mean": "n/a"}, "b": "not a mapping"}, (None, None)),
    ],
)
def test_headline_accuracy(metrics: dict[str, Any] | None, expected: tuple[str | None, float | None]) -> None:
    assert headline_accuracy(metrics) == expected
