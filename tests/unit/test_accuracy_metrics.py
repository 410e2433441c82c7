"""Output metrics and the accuracy gate."""

from __future__ import annotations

import numpy as np
import pytest

from dqd.pipeline.accuracy import (
    GateThresholds,
    compare_outputs,
    gate,
    is_logits_like,
    output_metrics,
    per_sample_cosine,
)
from dqd.settings import AccuracySettings

DEFAULTS = GateThresholds.from_settings(AccuracySettings())


def noisy(reference: np.ndarray, relative_noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(reference.shape)
    noise *= relative_noise * np.linalg.norm(reference) / np.linalg.norm(noise)
    return (reference + noise).astype(np.float32)


def test_identical_outputs_are_perfect() -> None:
    ref = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    metrics = output_metrics("logits", [ref], [ref.copy()])
    assert metrics["max_abs_diff"] == 0.0 and metrics["relative_l2"] == 0.0
    assert metrics["cosine_mean"] == pytest.approx(1.0) and metrics["cosine_worst"] == pytest.approx(1.0)
    assert metrics["top1_agreement"] == 1.0 and metrics["samples"] == 4


def test_cosine_is_per_sample_along_the_batch_axis() -> None:
    ref = np.ones((3, 2, 4))
    cand = ref.copy()
    cand[1] = -1.0  # one sample flipped: its cosine is -1, the others 1
    cos = per_sample_cosine(ref, cand)
    assert cos.tolist() == pytest.approx([1.0, -1.0, 1.0])
    metrics = output_metrics("hidden", [ref], [cand])
    assert metrics["cosine_worst"] == pytest.approx(-1.0)
    assert metrics["cosine_mean"] == pytest.approx(1 / 3)


def test_relative_l2_and_max_abs() -> None:
    ref = np.array([[3.0, 4.0]])
    cand = np.array([[3.0, 4.5]])
    metrics = output_metrics("v", [ref], [cand])
    assert metrics["relative_l2"] == pytest.approx(0.5 / 5.0)
    assert metrics["max_abs_diff"] == pytest.approx(0.5)


def test_metrics_pool_over_several_feeds() -> None:
    a, b = np.ones((2, 3)), np.full((1, 3), 2.0)
    metrics = output_metrics("v", [a, b], [a, b * 1.5])
    assert metrics["samples"] == 3
    assert metrics["relative_l2"] == pytest.approx(np.sqrt(3.0 / (6 + 12)))


def test_top1_agreement_counts_flips() -> None:
    ref = np.array([[2.0, 1.0], [0.0, 1.0], [5.0, 4.0], [1.0, 3.0]])
    cand = ref.copy()
    cand[0] = [1.0, 2.0]
    assert output_metrics("probs", [ref], [cand])["top1_agreement"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("name", "shape", "dtype", "expected"),
    [
        ("logits", (4, 10), np.float32, True),
        ("output", (4, 2), np.float32, True),
        ("last_hidden_state", (4, 17, 384), np.float32, False),
        ("class_probs", (4, 17, 5), np.float32, True),
        ("mask", (4, 1, 32, 32), np.float32, False),
        ("label", (4, 3), np.int64, False),
        ("score", (4, 1), np.float32, False),
    ],
)
def test_logits_like(name: str, shape: tuple[int, ...], dtype: type, expected: bool) -> None:
    assert is_logits_like(name, np.zeros(shape, dtype=dtype)) is expected


def test_integer_outputs_use_exact_agreement() -> None:
    metrics = output_metrics("label", [np.array([1, 2, 3, 4])], [np.array([1, 2, 0, 4])])
    assert metrics == {"agreement": 0.75}
    assert gate({"label": metrics}, DEFAULTS)[0] is False


def test_gate_accepts_quantization_noise_and_rejects_gross_divergence() -> None:
    ref = np.random.default_rng(1).standard_normal((8, 17, 384)).astype(np.float32)
    small = compare_outputs(["h"], [[ref]], [[noisy(ref, 0.10)]])
    assert gate(small, DEFAULTS) == (True, gate(small, DEFAULTS)[1])
    assert "cosine mean" in gate(small, DEFAULTS)[1]
    # An LSTM whose probabilities drift to cosine ~0.75 (relative L2 ~0.9) must fail.
    gross = compare_outputs(["h"], [[ref]], [[noisy(ref, 0.9)]])
    assert gross["h"]["cosine_mean"] < 0.8
    passed, reason = gate(gross, DEFAULTS)
    assert not passed and "cosine mean" in reason and "relative L2" in reason


def test_gate_catches_one_bad_sample_among_good_ones() -> None:
    ref = np.random.default_rng(2).standard_normal((10, 64))
    cand = noisy(ref, 0.05)
    cand[3] = noisy(ref[3:4], 1.2)[0]
    metrics = compare_outputs(["y"], [[ref]], [[cand]])
    passed, reason = gate(metrics, DEFAULTS)
    assert not passed and "worst-sample cosine" in reason


def test_gate_fails_on_nan_and_shape_mismatch_and_nothing_to_compare() -> None:
    ref = np.ones((2, 3), dtype=np.float32)
    bad = ref.copy()
    bad[0, 0] = np.nan
    assert gate(compare_outputs(["y"], [[ref]], [[bad]]), DEFAULTS) == (
        False,
        "y: NaN or infinity where FP32 is finite",
    )
    assert not gate(compare_outputs(["y"], [[ref]], [[np.ones((3, 2))]]), DEFAULTS)[0]
    assert gate({}, DEFAULTS) == (False, "no tensor output could be compared")


def test_non_tensor_outputs_are_left_out() -> None:
    zipmap = [{"a": 0.5}]
    metrics = compare_outputs(["label", "probs"], [[np.array([1]), zipmap]], [[np.array([1]), zipmap]])
    assert list(metrics) == ["label"]


def test_zero_outputs_agree() -> None:
    zero = np.zeros((2, 4))
    metrics = output_metrics("y", [zero], [zero])
    assert metrics["cosine_worst"] == 1.0 and metrics["relative_l2"] == 0.0


def test_near_tie_flips_within_typical_noise_do_not_fail_the_gate() -> None:
    rng = np.random.default_rng(5)
    ref = rng.standard_normal((8, 5)) * 3
    ref[2] = [4.0, 3.99, 0.0, 0.0, 0.0]  # FP32 itself can hardly tell class 0 from class 1 here
    cand = ref + rng.uniform(-0.05, 0.05, ref.shape)
    cand[2, :2] = [3.98, 4.01]  # a flip explained by ordinary noise
    metrics = output_metrics("logits", [ref], [cand])
    assert metrics["top1_agreement"] == pytest.approx(7 / 8)
    assert metrics["top1_agreement_clear"] == 1.0 and metrics["top1_clear_rows"] == 7
    assert gate({"logits": metrics}, DEFAULTS)[0]


def test_a_flip_on_a_clearly_decided_row_fails_the_gate() -> None:
    ref = np.tile(np.array([[5.0, 0.0, 0.0]]), (20, 1))
    cand = ref + 0.01
    cand[0] = [0.0, 5.0, 0.0]  # FP32 was sure; the variant changed its answer
    metrics = output_metrics("logits", [ref], [cand])
    assert metrics["top1_agreement_clear"] == pytest.approx(19 / 20)
    passed, reason = gate({"logits": metrics}, GateThresholds(0.0, -1.0, 10.0, 0.99))
    assert not passed and "top-1 agreement 0.950" in reason
