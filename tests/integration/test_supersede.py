"""Issue 9, scenario 1: a path moving on from undecided content flags that version superseded."""

from __future__ import annotations

from dqd.catalog import Catalog
from tests.query_factory import add_model, sha_of


def test_undecided_content_replaced_at_its_path_is_superseded(catalog: Catalog) -> None:
    partial, complete = sha_of("partial"), sha_of("complete")
    catalog.observe_file("m.onnx", partial, 10)
    assert not catalog.is_superseded(partial)
    catalog.observe_file("m.onnx", complete, 20)
    assert catalog.is_superseded(partial) and not catalog.is_superseded(complete)
    # Back to the earlier content (a revert): current again.
    catalog.observe_file("m.onnx", partial, 10)
    assert not catalog.is_superseded(partial) and catalog.is_superseded(complete)


def test_decided_or_shared_content_is_a_real_version(catalog: Catalog) -> None:
    add_model(catalog, "decided.onnx", seed=1)
    decided = catalog.known_paths()["decided.onnx"].sha256
    assert decided is not None
    catalog.observe_file("decided.onnx", sha_of("v2"), 30)
    assert not catalog.is_superseded(decided)  # it was decided: history worth keeping

    shared = sha_of("shared")
    catalog.observe_file("a.onnx", shared, 10)
    catalog.observe_file("b.onnx", shared, 10)
    catalog.observe_file("a.onnx", sha_of("a2"), 10)
    assert not catalog.is_superseded(shared)  # still at b.onnx
