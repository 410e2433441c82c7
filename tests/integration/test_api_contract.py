"""Contract test: requests generated from /openapi.json never get a 5xx, and responses match the document."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from dqd.api import create_app
from dqd.catalog import Catalog
from dqd.domain import Outcome
from dqd.settings import Settings
from tests.query_factory import add_model, sha_of

TOKEN = "contract-test-token"
PROBES = ("/healthz", "/readyz")


def _schema(catalog: Catalog, settings: Settings) -> schemathesis.BaseSchema:
    add_model(catalog, "zoo/a/model.onnx")
    add_model(catalog, "zoo/b/model.onnx", outcome=Outcome.KEPT_FP32)
    add_model(catalog, "broken.onnx", outcome=Outcome.ERROR)
    catalog.observe_file("queued.onnx", sha_of("queued"), 1)
    catalog.enqueue(sha_of("queued"), "x86_64-avx2", source_path="queued.onnx")
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(catalog, settings))


def _operations(schema: schemathesis.BaseSchema) -> list[Any]:
    # One hypothesis run per operation (the lazy pytest loader does not work with this pytest).
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10  # every read endpoint, the probes, /metrics and the report
    return operations


def test_api_contract(catalog: Catalog) -> None:
    for operation in _operations(_schema(catalog, Settings())):

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        check()


def test_api_contract_with_a_token_set(catalog: Catalog) -> None:
    """Generated requests with the token keep the contract; the same without it get 401 (probes aside)."""
    schema = _schema(catalog, Settings(api={"token": TOKEN}))
    refused: list[str] = []
    for operation in _operations(schema):
        _check_with_and_without_token(operation, refused)
    assert refused


def _check_with_and_without_token(operation: Any, refused: list[str]) -> None:
    path = operation.path

    @given(case=operation.as_strategy())
    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {TOKEN}"},
            checks=[not_a_server_error, response_schema_conformance],
        )
        anonymous = case.call()
        if path in PROBES:
            assert anonymous.status_code < 500
        else:
            assert anonymous.status_code == 401 or (
                # The report sends a browser to the login form instead.
                path.startswith("/report") and anonymous.status_code in (302, 303, 307)
            ), (path, anonymous.status_code)
            refused.append(path)

    check()
