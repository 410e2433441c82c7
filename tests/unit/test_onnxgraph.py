"""The one model walker: every body, sparse initializer and model-local function is seen."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dqd.onnxgraph import all_nodes, all_tensors, model_graphs, walk_graphs


def _const(name: str) -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(np.ones(2, np.float32), name)
    )


def _body(name: str, *nodes: onnx.NodeProto, init: str | None = None) -> onnx.GraphProto:
    out = helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [2])
    inits = [numpy_helper.from_array(np.zeros(2, np.float32), init)] if init else []
    return helper.make_graph(
        [*nodes, helper.make_node("Identity", [f"{name}_c"], [f"{name}_out"])], name, [], [out], inits
    )


def _model() -> onnx.ModelProto:
    """Main graph: If(then: a nested If, else: plain) and a Loop; a sparse initializer; a local function
    whose node is an If with its own body."""
    inner = _body("inner", _const("inner_c"), init="inner_w")
    then = _body(
        "then",
        _const("then_c"),
        helper.make_node(
            "If", ["cond"], ["x"], then_branch=inner, else_branch=_body("inner_else", _const("inner_else_c"))
        ),
    )
    other = _body("else", _const("else_c"))
    loop_body = _body("loop", _const("loop_c"), init="loop_w")
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.ones(1, np.float32), "sparse_w"),
        numpy_helper.from_array(np.array([0], np.int64), "sparse_w_idx"),
        [4],
    )
    fn_body = _body("fn_body", _const("fn_body_c"))
    function = helper.make_function(
        "local",
        "F",
        ["cond"],
        ["y"],
        [
            _const("fn_c"),
            helper.make_node(
                "If", ["cond"], ["y"], then_branch=fn_body, else_branch=_body("fn_else", _const("fn_else_c"))
            ),
        ],
        [helper.make_opsetid("", 17)],
    )
    graph = helper.make_graph(
        [
            helper.make_node("If", ["cond"], ["a"], then_branch=then, else_branch=other),
            helper.make_node("Loop", ["", "cond"], ["b"], body=loop_body),
            helper.make_node("F", ["cond"], ["c"], domain="local"),
        ],
        "main",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.ones(2, np.float32), "main_w")],
        sparse_initializer=[sparse],
    )
    return helper.make_model(graph, functions=[function])


def test_walk_graphs_reaches_every_body_with_its_depth() -> None:
    found = {graph.name: depth for graph, depth in walk_graphs(_model().graph)}
    assert found == {"main": 0, "then": 1, "inner": 2, "inner_else": 2, "else": 1, "loop": 1}


def test_walk_graphs_yields_parents_before_children() -> None:
    order = [graph.name for graph, _ in walk_graphs(_model().graph)]
    assert order.index("then") < order.index("inner")
    assert order[0] == "main"


def test_model_graphs_include_bodies_inside_local_functions() -> None:
    names = [graph.name for graph in model_graphs(_model())]
    assert sorted(names) == sorted(
        ["main", "then", "inner", "inner_else", "else", "loop", "fn_body", "fn_else"]
    )


def test_all_nodes_include_function_nodes() -> None:
    outputs = {out for node in all_nodes(_model()) for out in node.output}
    assert {"fn_c", "fn_body_c", "fn_else_c", "inner_c", "loop_c"} <= outputs


def test_all_tensors_cover_initializers_sparse_constants_and_functions() -> None:
    names = {tensor.name for tensor in all_tensors(_model())}
    expected = {
        "main_w",
        "inner_w",
        "loop_w",
        "sparse_w",
        "sparse_w_idx",
        *(f"{g}_c" for g in ("then", "inner", "inner_else", "else", "loop", "fn", "fn_body", "fn_else")),
    }
    assert names == expected


def test_folding_constants_reaches_nested_bodies_in_place() -> None:
    """Folding rewrites node lists: a body nested two deep must still be folded in the model itself."""
    from dqd.pipeline.prepare import fold_constant_weights

    model = _model()
    assert fold_constant_weights(model) == 5  # main-graph bodies only: functions are not rewritten
    graphs = {graph.name: graph for graph, _ in walk_graphs(model.graph)}
    assert [t.name for t in graphs["inner"].initializer] == ["inner_w", "inner_c"]
    assert not any(node.op_type == "Constant" for graph in graphs.values() for node in graph.node)
