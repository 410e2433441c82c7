"""Hostile and broken files for the watched folder, each with the final state dqd must reach.

:func:`build_cases` writes every case into a folder (and the files some cases
point at into a folder beside it) and returns what each must end as:

* ``decided``: a decision of any outcome but ``error`` (a valid model,
  however odd its name);
* ``error``: an ``error`` decision whose reason names the problem;
* ``refused``: no decision, listed as refused with the reason;
* ``unlisted``: not a model for dqd (a folder, a hidden or partial file).

The expected fragment of the reason is what a user must be told; the suite
in ``tests/acceptance/test_hostile_inputs.py`` runs them through a real daemon.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.acceptance.tiny import tiny_model_bytes

DECIDED, ERROR, REFUSED, UNLISTED = "decided", "error", "refused", "unlisted"
LATIN1_NAME = os.fsdecode(b"caf\xe9-latin1.onnx")
LONG_NAME = "l" * (255 - len(".onnx")) + ".onnx"  # the file-name limit, exactly


@dataclass(frozen=True)
class Case:
    name: str  # the path under the watched folder
    expect: str  # DECIDED, ERROR, REFUSED or UNLISTED
    reason: str = ""  # a fragment the recorded reason must hold (case-insensitive)


def build_cases(root: Path, outside: Path) -> list[Case]:
    """Write every case under ``root`` (files they point at under ``outside``); what each must become."""
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    for builder in _BUILDERS:
        cases.extend(builder(root, outside))
    names = [case.name for case in cases]
    assert len(names) == len(set(names)), "two cases share a name"
    return cases


def valid_bytes(seed: int = 0) -> bytes:
    return tiny_model_bytes(seed, hidden=32)


def _model(
    nodes: list[onnx.NodeProto], inits: list[TensorProto] | None = None, **kw: object
) -> onnx.ModelProto:
    """A small graph x[batch, 8] -> y; ``kw`` overrides inputs/outputs/opset/ir_version."""
    inputs = kw.get("inputs") or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])]
    outputs = kw.get("outputs") or [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])]
    graph = helper.make_graph(nodes, "hostile", inputs, outputs, inits or [])  # type: ignore[arg-type]
    opset = int(kw.get("opset", 17))  # type: ignore[call-overload]
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = int(kw.get("ir_version", 8))  # type: ignore[call-overload]
    return model


def _weight(name: str, value: float | None = None, shape: tuple[int, ...] = (8, 8)) -> TensorProto:
    rng = np.random.default_rng(len(name))
    array = (
        rng.standard_normal(shape).astype(np.float32) if value is None else np.full(shape, value, np.float32)
    )
    return numpy_helper.from_array(array, name)


def _matmul(weight: str = "w") -> onnx.NodeProto:
    return helper.make_node("MatMul", ["x", weight], ["y"], name="mm")


def _write(path: Path, data: bytes | onnx.ModelProto) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.SerializeToString())


# --- not models at all ---


def _not_models(root: Path, outside: Path) -> list[Case]:
    full = valid_bytes(1)
    _write(root / "zero.onnx", b"")
    _write(root / "random.onnx", np.random.default_rng(7).bytes(4096))
    _write(root / "text.onnx", b"this is a README, not a model\n")
    _write(root / "gzip.onnx", gzip.compress(full))
    _write(root / "tensor-proto.onnx", _weight("t").SerializeToString())
    cases = [
        Case("zero.onnx", ERROR, "not"),
        Case("random.onnx", ERROR, "not"),
        Case("text.onnx", ERROR, "not"),
        Case("gzip.onnx", ERROR, "not"),
        Case("tensor-proto.onnx", ERROR, "not"),
    ]
    for offset in (1, 16, len(full) // 4, len(full) // 2, len(full) * 9 // 10, len(full) - 1):
        name = f"truncated-at-{offset}.onnx"
        _write(root / name, full[:offset])
        cases.append(Case(name, ERROR, "not"))
    return cases


# --- models whose graph is broken ---


def _broken_graphs(root: Path, outside: Path) -> list[Case]:
    """Each holds a MatMul with constant weights, so dqd has something to quantize and must find
    the graph's fault (a broken graph with nothing quantizable is ``skipped`` before it is run)."""
    node = helper.make_node
    mm = node("MatMul", ["x", "w"], ["h"], name="mm")  # x[batch, 8] @ w[8, 8] -> h
    w = [_weight("w")]
    cycle = _model([mm, node("Add", ["h", "y"], ["a"], name="a1"), node("Relu", ["a"], ["y"], name="r")], w)
    dangling = _model([mm, node("Add", ["h", "nowhere"], ["y"], name="add")], w)
    duplicate = _model([mm, node("Relu", ["h"], ["y"], name="mm")], w)
    ghost_out = _model(
        [mm, node("Relu", ["h"], ["y"], name="r")],
        w,
        outputs=[
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8]),
            helper.make_tensor_value_info("ghost", TensorProto.FLOAT, ["batch", 8]),
        ],
    )
    huge = _model(
        [_matmul()],
        w,
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1_000_000_000, 8])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1_000_000_000, 8])],
    )
    lying = _model([_matmul()], [_weight("w")])
    lying.graph.initializer[0].dims[:] = [64, 64]  # 16 KiB declared, 256 bytes present
    no_nodes = _model([], outputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])])
    strings = _model(
        [node("Identity", ["x"], ["y"], name="id")],
        inputs=[helper.make_tensor_value_info("x", TensorProto.STRING, ["batch"])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.STRING, ["batch"])],
    )
    unknown_op = _model([mm, node("NoSuchOp", ["h"], ["y"], name="n")], w)
    custom = _model([mm, node("Secret", ["h"], ["y"], name="s", domain="com.example.custom")], w)
    custom.opset_import.append(helper.make_opsetid("com.example.custom", 1))
    nan = _model([_matmul()], [_weight("w", float("nan"))])
    inf = _model([_matmul()], [_weight("w", float("inf"))])
    built = {
        "cycle.onnx": (cycle, ERROR, "topologically sorted"),
        "dangling-input.onnx": (dangling, ERROR, "nowhere"),
        "duplicate-node-names.onnx": (duplicate, ERROR, "two nodes with same node name"),
        "output-nobody-produces.onnx": (ghost_out, ERROR, "ghost"),
        "huge-declared-dims.onnx": (huge, ERROR, "set accuracy.input_shapes"),
        "initializer-size-lies.onnx": (lying, ERROR, "too small for the declared shape"),
        "no-nodes.onnx": (no_nodes, DECIDED, "nothing quantizable"),
        "string-input.onnx": (strings, DECIDED, ""),
        "unknown-op.onnx": (unknown_op, ERROR, "No Op registered for NoSuchOp"),
        "custom-op-domain.onnx": (custom, ERROR, "com.example.custom:Secret"),
        "nan-weights.onnx": (nan, DECIDED, ""),
        "inf-weights.onnx": (inf, DECIDED, ""),
        "opset-from-the-future.onnx": (_model([_matmul()], [_weight("w")], opset=99), ERROR, "opset 99"),
        "ir-from-the-future.onnx": (
            _model([_matmul()], [_weight("w")], ir_version=99),
            ERROR,
            "ir_version 99",
        ),
    }
    for name, (model, _, _) in built.items():
        _write(root / name, model)
    return [Case(name, expect, reason) for name, (_, expect, reason) in built.items()]


# --- external data ---


def _external(root: Path, outside: Path) -> list[Case]:
    secret = outside / "secret.data"
    secret.write_bytes(np.zeros(64, np.float32).tobytes())
    cases = []

    def pointing_at(name: str, location: str, *, length: int = 256) -> None:
        model = _model([_matmul()], [_weight("w")])
        tensor = model.graph.initializer[0]
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
            tensor.external_data.add(key=key, value=value)
        _write(root / "ext" / name, model)

    pointing_at("parent.onnx", "../../../../../../etc/passwd")
    cases.append(Case("ext/parent.onnx", ERROR, "outside the model's folder"))
    pointing_at("absolute.onnx", "/etc/passwd")
    cases.append(Case("ext/absolute.onnx", ERROR, "outside"))
    (root / "ext" / "linked.data").symlink_to(secret)
    pointing_at("symlinked-data.onnx", "linked.data")
    cases.append(Case("ext/symlinked-data.onnx", ERROR, "outside"))
    hard_target = outside / "hard-secret.data"
    hard_target.write_bytes(np.ones(64, np.float32).tobytes())
    os.link(hard_target, root / "ext" / "hard.data")  # same volume: reaches a file outside the tree
    pointing_at("hardlinked-data.onnx", "hard.data")
    cases.append(Case("ext/hardlinked-data.onnx", ERROR, "hard link"))
    pointing_at("missing-data.onnx", "missing.data")
    cases.append(Case("ext/missing-data.onnx", REFUSED, "missing.data"))
    (root / "ext" / "short.data").write_bytes(b"\0" * 100)  # 256 bytes promised
    pointing_at("truncated-data.onnx", "short.data")
    cases.append(Case("ext/truncated-data.onnx", ERROR, "exceeds available data"))
    return cases


# --- links, folders, special files ---


def _links_and_special_files(root: Path, outside: Path) -> list[Case]:
    _write(outside / "elsewhere.onnx", valid_bytes(2))
    (root / "links").mkdir()
    (root / "links" / "out-of-root.onnx").symlink_to(outside / "elsewhere.onnx")
    (root / "links" / "loop-a.onnx").symlink_to(root / "links" / "loop-b.onnx")
    (root / "links" / "loop-b.onnx").symlink_to(root / "links" / "loop-a.onnx")
    (root / "links" / "dangling.onnx").symlink_to(root / "links" / "no-such-file.onnx")
    _write(root / "links" / "target.onnx", valid_bytes(3))
    (root / "links" / "inside.onnx").symlink_to(root / "links" / "target.onnx")
    (root / "folder.onnx").mkdir()
    os.mkfifo(root / "fifo.onnx")
    _write(root / ".hidden.onnx", valid_bytes(4))
    _write(root / "download.onnx.part", valid_bytes(5))
    _write(root / "UPPER.ONNX", valid_bytes(6))
    return [
        Case("links/out-of-root.onnx", REFUSED, "outside the watched root"),
        Case("links/loop-a.onnx", REFUSED, "symlink loop"),
        Case("links/loop-b.onnx", REFUSED, "symlink loop"),
        Case("links/dangling.onnx", REFUSED, "dangling symlink"),
        Case("links/target.onnx", DECIDED),
        Case("links/inside.onnx", DECIDED),
        Case("folder.onnx", UNLISTED),
        Case("fifo.onnx", REFUSED, "not a regular file"),
        Case(".hidden.onnx", UNLISTED),
        Case("download.onnx.part", UNLISTED),
        Case("UPPER.ONNX", UNLISTED),
    ]


# --- names ---


def _names(root: Path, outside: Path) -> list[Case]:
    _write(root / LATIN1_NAME, valid_bytes(8))
    _write(root / LONG_NAME, valid_bytes(9))
    _write(root / "same-a.onnx", valid_bytes(10))
    _write(root / "same-b.onnx", valid_bytes(10))
    _write(root / "a/b/c/d/e/f/g/h/deep.onnx", valid_bytes(11))
    _write(root / "spaces and 'quotes' $(not a shell).onnx", valid_bytes(12))
    return [
        Case(LATIN1_NAME, DECIDED),
        Case(LONG_NAME, DECIDED),
        Case("same-a.onnx", DECIDED),
        Case("same-b.onnx", DECIDED),
        Case("a/b/c/d/e/f/g/h/deep.onnx", DECIDED),
        Case("spaces and 'quotes' $(not a shell).onnx", DECIDED),
    ]


_BUILDERS: list[Callable[[Path, Path], list[Case]]] = [
    _not_models,
    _broken_graphs,
    _external,
    _links_and_special_files,
    _names,
]


def endless_loop_bytes() -> bytes:
    """A model whose FP32 run never ends: a Loop whose condition stays true for 2**62 trips, after
    a MatMul (so it is quantizable and gets run). Only the engine's timeout stops it."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["v_in", "v_in"], ["v_out"]),
        ],
        "forever",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, ["batch", 8]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, ["batch", 8]),
        ],
    )
    trips = numpy_helper.from_array(np.array(2**62, np.int64), "trips")
    keep_going = numpy_helper.from_array(np.array(True), "keep_going")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        helper.make_node("Loop", ["trips", "keep_going", "h"], ["y"], name="loop", body=body),
    ]
    return _model(nodes, [_weight("w"), trips, keep_going]).SerializeToString()
