"""Contract test: requests generated from /openapi.json never get a 5xx, and responses match the document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from dqd.api import create_app
from dqd.catalog import Catalog
from dqd.domain import Outcome
from dqd.settings import Settings
from tests.query_factory import add_model, sha_of


@pytest.fixture
def api_schema(catalog: Catalog) -> schemathesis.BaseSchema:
    add_model(catalog, "zoo/a/model.onnx")
    add_model(catalog, "zoo/b/model.onnx", outcome=Outcome.KEPT_FP32)
    add_model(catalog, "broken.onnx", outcome=Outcome.ERROR)
    catalog.observe_file("queued.onnx", sha_of("queued"), 1)
    catalog.enqueue(sha_of("queued"), "x86_64-avx2", source_path="queued.onnx")
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(catalog, Settings()))


def test_api_contract(api_schema: schemathesis.BaseSchema) -> None:
    # One hypothesis run per operation (the lazy pytest loader does not work with this pytest).
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10  # every read endpoint, the probes, /metrics and the report

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        check()
