"""The bounded shape search for synthetic inputs (pure: FP32 is a callback here)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from dqd.errors import ModelError
from dqd.pipeline.dimprobe import (
    MAX_PROBES,
    DimKind,
    candidate_assignments,
    dynamic_dims,
    probe_shapes,
    sizes_in,
)
from dqd.records import TensorInfo

IMAGE = TensorInfo("x", "float32", ("batch", 3, "height", "width"))
TEXT = (
    TensorInfo("input_ids", "int64", ("batch", "sequence")),
    TensorInfo("attention_mask", "int64", ("batch", "sequence")),
)
Shapes = Mapping[str, tuple[int, ...]]


def runner(accepts: Callable[[Shapes], bool], calls: list[Shapes]) -> Callable[[Shapes], str | None]:
    def runs(shapes: Shapes) -> str | None:
        calls.append(dict(shapes))
        return None if accepts(shapes) else "Concat: dimension mismatch"

    return runs


def test_dims_are_classified_by_name_and_position_and_shared_names_are_one_dim() -> None:
    kinds = {d.key: d.kind for d in dynamic_dims([IMAGE, *TEXT, TensorInfo("v", "float32", (None, None))])}
    assert kinds == {
        "batch": DimKind.BATCH,
        "height": DimKind.SPATIAL,
        "width": DimKind.SPATIAL,
        "sequence": DimKind.SEQUENCE,
        "v:0": DimKind.BATCH,
        "v:1": DimKind.OTHER,
    }


def test_sizes_named_in_a_message_come_in_order_once() -> None:
    message = "Concat: axis 2 has 47 but input 0 has 48 (node Concat_12, 48 expected; ratio 0.5)"
    assert sizes_in(message) == [2, 47, 48]


def test_candidates_try_the_message_sizes_first_keep_batch_and_never_repeat() -> None:
    dims = dynamic_dims([IMAGE])
    first = {"batch": 4, "height": 224, "width": 224}
    candidates = list(candidate_assignments(dims, first, "Concat: expected 48, got 224"))
    assert candidates[0] == {"batch": 4, "height": 48, "width": 48}
    assert candidates[1] == {"batch": 4, "height": 48, "width": 224}  # one dim at a time next
    assert all(c["batch"] == 4 for c in candidates)
    assert first not in candidates
    assert len({tuple(sorted(c.items())) for c in candidates}) == len(candidates)


def test_a_recogniser_whose_height_must_be_48_is_found_and_said() -> None:
    calls: list[Shapes] = []
    runs = runner(lambda s: s["x"][2] == 48, calls)
    probed = probe_shapes([IMAGE], {"x": (4, 3, 224, 224)}, "Concat: dimension mismatch", runs)
    assert probed.shapes == {"x": (4, 3, 48, 48)}
    assert probed.note.startswith("synthetic inputs: x[4, 3, 48, 48], found by probing")
    assert "failed on x[4, 3, 224, 224]: Concat: dimension mismatch" in probed.note


def test_a_detector_that_needs_multiples_of_64_gets_one() -> None:
    calls: list[Shapes] = []
    runs = runner(lambda s: s["x"][2] % 64 == 0 and s["x"][3] % 64 == 0, calls)
    probed = probe_shapes([IMAGE], {"x": (1, 3, 224, 224)}, "Add: shapes 7 and 8 differ", runs)
    assert probed.shapes["x"][2] % 64 == 0 and probed.shapes["x"][3] % 64 == 0


def test_shared_sequence_dims_stay_equal_under_a_maximum_length() -> None:
    calls: list[Shapes] = []
    runs = runner(lambda s: s["input_ids"][1] <= 10 and s["input_ids"] == s["attention_mask"], calls)
    base = {"input_ids": (4, 16), "attention_mask": (4, 16)}
    probed = probe_shapes(TEXT, base, "Gather: index out of range", runs)
    assert probed.shapes == {"input_ids": (4, 8), "attention_mask": (4, 8)}
    assert all(c["input_ids"] == c["attention_mask"] for c in calls)


def test_nothing_that_runs_is_an_error_saying_how_much_was_tried() -> None:
    calls: list[Shapes] = []
    with pytest.raises(ModelError) as caught:
        probe_shapes(
            [IMAGE],
            {"x": (1, 3, 224, 224)},
            "Reshape: 1 2 3 4 5 6 7 8 9 10 11",
            runner(lambda s: False, calls),
        )
    assert len(calls) == MAX_PROBES
    assert f"and on {MAX_PROBES} other shape(s) of its dynamic dims" in str(caught.value)
    assert "provide a <stem>.samples.npz" in str(caught.value)


def test_a_static_model_is_not_probed() -> None:
    calls: list[Shapes] = []
    static = TensorInfo("x", "float32", (1, 8))
    with pytest.raises(ModelError, match="no other shape"):
        probe_shapes([static], {"x": (1, 8)}, "bad", runner(lambda s: True, calls))
    assert calls == []
