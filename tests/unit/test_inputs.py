"""Input synthesis from a signature, and samples beside the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dqd.domain import InputSource
from dqd.errors import ModelError
from dqd.pipeline.inputs import (
    IMAGE_SIDE,
    UNKNOWN_INT_HIGH,
    is_state_input,
    load_samples,
    resolve_shapes,
    synthesize_inputs,
)
from dqd.records import GraphSummary, TensorInfo


def summary(
    inputs: list[TensorInfo], outputs: list[str] | None = None, vocab: dict[str, int] | None = None
) -> GraphSummary:
    return GraphSummary(
        path="model.onnx",
        size_bytes=0,
        ir_version=8,
        opsets={"": 17},
        producer="",
        inputs=tuple(inputs),
        outputs=tuple(TensorInfo(name, "float32", ("batch",)) for name in (outputs or ["y"])),
        op_histogram={},
        quantizable_top_level={},
        quantizable_in_subgraphs={},
        control_flow={},
        initializer_types={},
        constant_node_weights=0,
        external_data=False,
        vocab_sizes=vocab or {},
    )


TRANSFORMER = [
    TensorInfo("input_ids", "int64", ("batch", "sequence")),
    TensorInfo("attention_mask", "int64", ("batch", "sequence")),
    TensorInfo("token_type_ids", "int64", ("batch", "sequence")),
]


def test_token_ids_stay_below_the_embedding_table_and_masks_are_ones() -> None:
    feeds = synthesize_inputs(
        summary(TRANSFORMER, vocab={"input_ids": 30522, "token_type_ids": 2}), batch=3, default_dim=11, seed=1
    ).feeds[0]
    assert feeds["input_ids"].shape == (3, 11) and feeds["input_ids"].dtype == np.int64
    assert feeds["input_ids"].max() < 30522 and feeds["input_ids"].min() >= 0
    assert feeds["input_ids"].max() > 1000  # really spread over the vocabulary, not stuck near 0
    assert set(np.unique(feeds["token_type_ids"])) <= {0, 1}
    assert (feeds["attention_mask"] == 1).all()


def test_same_symbol_gets_the_same_size_and_overrides_win() -> None:
    shapes = resolve_shapes(TRANSFORMER, batch=2, default_dim=7, overrides={"input_ids": [5, 9]})
    assert shapes == {"input_ids": (5, 9), "attention_mask": (5, 9), "token_type_ids": (5, 9)}


def test_image_inputs_get_a_cnn_friendly_side() -> None:
    shapes = resolve_shapes(
        [TensorInfo("x", "float32", (None, 3, "h", "w"))], batch=2, default_dim=16, overrides={}
    )
    assert shapes["x"] == (2, 3, IMAGE_SIDE, IMAGE_SIDE)
    assert IMAGE_SIDE % 32 == 0


def test_state_inputs_are_zero_and_bools_are_bool() -> None:
    inputs = [
        TensorInfo("input", "float32", (1, 576)),
        TensorInfo("state", "float32", (2, None, 128)),
        TensorInfo("flag", "bool", ()),
    ]
    feeds = synthesize_inputs(summary(inputs, outputs=["output", "stateN"]), batch=1, default_dim=4).feeds[0]
    assert feeds["state"].shape == (2, 4, 128) and not feeds["state"].any()
    assert feeds["flag"].dtype == np.bool_ and feeds["flag"].shape == ()
    # onnxruntime takes arrays only: a numpy scalar (what a 0-d comparison gives) is refused.
    assert all(isinstance(value, np.ndarray) for value in feeds.values())
    assert feeds["input"].std() > 0.5


@pytest.mark.parametrize(
    ("name", "outputs", "expected"),
    [
        ("state", ["output", "stateN"], True),
        ("past_key_values.0.key", ["logits"], True),
        ("h0", ["y"], True),
        ("memory", ["memory_out"], True),  # echoed by an output
        ("input_ids", ["last_hidden_state"], False),
        ("encoder_hidden_states", ["logits"], False),
    ],
)
def test_state_detection(name: str, outputs: list[str], expected: bool) -> None:
    assert is_state_input(name, outputs) is expected


def test_seed_makes_inputs_reproducible_and_distribution_is_configurable() -> None:
    info = [TensorInfo("x", "float32", ("batch", 64))]
    a = synthesize_inputs(summary(info), batch=4, default_dim=8, seed=3).feeds[0]["x"]
    b = synthesize_inputs(summary(info), batch=4, default_dim=8, seed=3).feeds[0]["x"]
    c = synthesize_inputs(summary(info), batch=4, default_dim=8, seed=4).feeds[0]["x"]
    u = synthesize_inputs(summary(info), batch=4, default_dim=8, seed=3, distribution="uniform").feeds[0]["x"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.abs(u).max() <= 1.0 < np.abs(a).max()


def test_unknown_integers_are_small_non_negative() -> None:
    feeds = synthesize_inputs(
        summary([TensorInfo("bytes", "int32", ("n", 2048))]), batch=2, default_dim=8
    ).feeds[0]
    assert (
        feeds["bytes"].dtype == np.int32
        and feeds["bytes"].min() >= 0
        and feeds["bytes"].max() < UNKNOWN_INT_HIGH
    )


def test_non_tensor_inputs_need_samples() -> None:
    with pytest.raises(ModelError, match="provide samples"):
        synthesize_inputs(summary([TensorInfo("seq", "sequence_type", None)]), batch=1, default_dim=1)


def test_samples_file_beside_the_model_is_found_and_checked(tmp_path: Path) -> None:
    model = tmp_path / "enc.onnx"
    np.savez(
        tmp_path / "enc.samples.npz",
        input_ids=np.ones((2, 5), dtype=np.int32),
        attention_mask=np.ones((2, 5)),
        token_type_ids=np.zeros((2, 5)),
    )
    found = load_samples(model, TRANSFORMER)
    assert found is not None and found.source is InputSource.SAMPLES
    assert found.feeds[0]["input_ids"].dtype == np.int64  # cast to the declared dtype
    assert load_samples(tmp_path / "other.onnx", TRANSFORMER) is None


def test_samples_folder_gives_one_feed_per_file(tmp_path: Path) -> None:
    folder = tmp_path / "m.samples"
    folder.mkdir()
    info = [TensorInfo("x", "float32", ("batch", 4))]
    for index in range(3):
        np.savez(folder / f"{index}.npz", x=np.full((1, 4), index, dtype=np.float32))
    found = load_samples(tmp_path / "m.onnx", info)
    assert found is not None and [f["x"][0, 0] for f in found.feeds] == [0, 1, 2]


def test_samples_missing_an_input_is_an_actionable_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "enc.samples.npz", input_ids=np.ones((1, 3), dtype=np.int64))
    with pytest.raises(ModelError, match="lacks input"):
        load_samples(tmp_path / "enc.onnx", TRANSFORMER)


def test_inputs_declared_too_large_to_synthesize_are_a_model_error_that_says_what_to_set() -> None:
    huge = summary([TensorInfo("x", "float32", (1_000_000_000, 8)), TensorInfo("s", "string", ("batch",))])
    with pytest.raises(ModelError, match=r"29\.8 GiB .*x\[1000000000, 8\].*accuracy\.input_shapes"):
        synthesize_inputs(huge, batch=1, default_dim=8)
    # At the limit's side of the line: a large but reasonable feed is synthesized.
    fine = summary([TensorInfo("x", "float32", ("batch", 1024, 1024))])
    assert synthesize_inputs(fine, batch=2, default_dim=8).feeds[0]["x"].nbytes == 8 * 2**20
