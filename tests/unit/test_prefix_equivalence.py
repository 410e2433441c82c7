"""The equivalence rule a pre-fix's working copy must meet (pure)."""

from __future__ import annotations

from dqd.pipeline.prefix import EQUIVALENCE_RELATIVE_L2, equivalence_failures


def test_equal_outputs_are_equivalent() -> None:
    assert (
        equivalence_failures({"y": {"relative_l2": 0.0, "cosine_mean": 1.0}, "ids": {"agreement": 1.0}}) == []
    )


def test_the_relative_l2_bound_is_inclusive() -> None:
    assert equivalence_failures({"y": {"relative_l2": EQUIVALENCE_RELATIVE_L2}}) == []
    (failure,) = equivalence_failures({"y": {"relative_l2": 2 * EQUIVALENCE_RELATIVE_L2}})
    assert failure.startswith("y: relative L2 2.00e-04 > 0.0001")


def test_integer_outputs_must_be_exact() -> None:
    (failure,) = equivalence_failures({"ids": {"agreement": 0.999}})
    assert failure == "ids: 0.10% of its integer values differ"


def test_shape_and_non_finite_changes_are_named() -> None:
    failures = equivalence_failures({"a": {"shape_mismatch": 1.0}, "b": {"non_finite": 1.0}})
    assert failures == ["a: another shape", "b: non-finite values the original does not have"]
