"""Walking an ONNX model: the one definition of which graphs and tensors a model holds.

Control-flow nodes (If, Loop, Scan) carry their bodies as graph attributes,
nested to any depth, and model-local functions carry nodes (and their own
bodies) outside the main graph. Every reader that must see all of a model's
weights (external-data locations, preflight, constant folding, the
quantizable-op census) walks it through here, so none of them misses a body,
a sparse initializer or a function.
"""

from __future__ import annotations

from collections.abc import Iterator

from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto


def node_subgraphs(node: NodeProto) -> Iterator[GraphProto]:
    """The bodies a node carries as attributes (If branches, Loop/Scan bodies)."""
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == AttributeProto.GRAPHS:
            yield from attr.graphs


def walk_graphs(graph: GraphProto, depth: int = 0) -> Iterator[tuple[GraphProto, int]]:
    """``graph`` and every body inside it, recursively, parents before children, with their nesting depth."""
    yield graph, depth
    for node in graph.node:
        for sub in node_subgraphs(node):
            yield from walk_graphs(sub, depth + 1)


def model_graphs(model: ModelProto) -> Iterator[GraphProto]:
    """The main graph with its bodies, then the bodies inside model-local functions' nodes."""
    for graph, _ in walk_graphs(model.graph):
        yield graph
    for function in model.functions:
        for node in function.node:
            for sub in node_subgraphs(node):
                for graph, _ in walk_graphs(sub):
                    yield graph


def all_nodes(model: ModelProto) -> Iterator[NodeProto]:
    """Every node: in every graph of :func:`model_graphs`, and directly in model-local functions."""
    for graph in model_graphs(model):
        yield from graph.node
    for function in model.functions:
        yield from function.node


def all_tensors(model: ModelProto) -> Iterator[TensorProto]:
    """Initializers (dense and sparse) and attribute tensors (Constant nodes), in every graph and function."""
    for graph in model_graphs(model):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from (sparse.values, sparse.indices)
    for node in all_nodes(model):
        yield from node_tensors(node)


def node_tensors(node: NodeProto) -> Iterator[TensorProto]:
    """The tensors a node carries as attributes (a Constant's value, sparse or dense)."""
    for attr in node.attribute:
        if attr.type == AttributeProto.TENSOR:
            yield attr.t
        elif attr.type == AttributeProto.TENSORS:
            yield from attr.tensors
        elif attr.type == AttributeProto.SPARSE_TENSOR:
            yield from (attr.sparse_tensor.values, attr.sparse_tensor.indices)
