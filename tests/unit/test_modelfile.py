"""A model's sha256 covers its external-data files; without them it is the file's plain sha256."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dqd import modelfile
from dqd.errors import ModelError
from dqd.modelfile import content_sha256, external_data_locations, model_files, unit_stat


def _model(seed: int = 0) -> onnx.ModelProto:
    """A MatMul whose weight is an initializer and an If whose branches hold a Constant-node weight."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "w")

    def branch(name: str) -> onnx.GraphProto:
        value = numpy_helper.from_array(rng.standard_normal((64,)).astype(np.float32), f"{name}_value")
        constant = helper.make_node("Constant", [], [f"{name}_out"], value=value)
        out = helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [64])
        return helper.make_graph([constant], name, [], [out])

    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["y"]),
        helper.make_node("If", ["flag"], ["bias"], then_branch=branch("then"), else_branch=branch("else")),
        helper.make_node("Add", ["y", "bias"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64]),
            helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 64])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _save(path: Path, *, external: bool, one_file: bool = True, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    model = _model(seed)
    if external:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=one_file,
            location=f"{path.name}.data",
            size_threshold=0,
            convert_attribute=True,  # the Constant nodes' tensors inside the If too
        )
    else:
        onnx.save_model(model, str(path))
    return path


def test_without_external_data_it_is_the_files_plain_sha256(tmp_path: Path) -> None:
    model = _save(tmp_path / "m.onnx", external=False)
    assert content_sha256(model) == hashlib.sha256(model.read_bytes()).hexdigest()
    assert model_files(model) == [model]


def test_a_file_that_is_not_onnx_hashes_plainly(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"location: nowhere, and not protobuf either \xff\xff\xff")
    assert content_sha256(junk) == hashlib.sha256(junk.read_bytes()).hexdigest()


def test_changing_only_the_data_file_is_a_new_version(tmp_path: Path) -> None:
    model = _save(tmp_path / "m.onnx", external=True)
    data = tmp_path / "m.onnx.data"
    assert model_files(model) == [model, data]
    before, graph_bytes = content_sha256(model), model.read_bytes()
    assert before != hashlib.sha256(graph_bytes).hexdigest()
    blob = bytearray(data.read_bytes())
    blob[0] ^= 0xFF
    data.write_bytes(bytes(blob))
    assert model.read_bytes() == graph_bytes
    assert content_sha256(model) != before


def test_locations_include_subgraph_constants_deduplicated_and_sorted(tmp_path: Path) -> None:
    model = _save(tmp_path / "m.onnx", external=True, one_file=False)
    # One file per tensor: the initializer and both If branches' Constant values.
    assert external_data_locations(model) == ["else_value", "then_value", "w"]
    one = _save(tmp_path / "one" / "m.onnx", external=True)
    assert external_data_locations(one) == ["m.onnx.data"]


def test_a_missing_data_file_is_a_model_error_naming_it(tmp_path: Path) -> None:
    model = _save(tmp_path / "m.onnx", external=True)
    (tmp_path / "m.onnx.data").unlink()
    with pytest.raises(ModelError, match=r"'m\.onnx\.data'"):
        content_sha256(model)
    with pytest.raises(ModelError, match=r"'m\.onnx\.data'"):
        model_files(model)


def test_the_units_stat_covers_the_data_file(tmp_path: Path) -> None:
    model = _save(tmp_path / "m.onnx", external=True)
    data = tmp_path / "m.onnx.data"
    size, mtime_ns = unit_stat(model)
    assert size == model.stat().st_size + data.stat().st_size
    os.utime(data, ns=(mtime_ns + 10**9, mtime_ns + 10**9))
    assert unit_stat(model) == (size, mtime_ns + 10**9)


def test_a_location_outside_the_folder_is_never_read(tmp_path: Path) -> None:
    model = _model()
    tensor = model.graph.initializer[0]
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    del tensor.float_data[:]
    tensor.external_data.add(key="location", value="../secret.bin")
    path = tmp_path / "inner" / "m.onnx"
    path.parent.mkdir()
    onnx.save_model(model, str(path))
    (tmp_path / "secret.bin").write_bytes(b"x" * 64 * 64 * 4)
    assert external_data_locations(path) == []  # preflight refuses it with a recorded reason
    assert content_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_location_key_is_found_across_read_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _save(tmp_path / "m.onnx", external=True)
    expected = content_sha256(model)
    monkeypatch.setattr(modelfile, "HASH_CHUNK", 5)  # "location" (8 bytes) always straddles chunks
    assert content_sha256(model) == expected
