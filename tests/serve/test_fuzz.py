"""Schemathesis over the service's OpenAPI document, against a live server: bounded examples per
operation; no 5xx, and every response (errors too) conforms to the documented schema."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
USERS = {"alice": "clinician", "sam": "scientist", "ada": "admin"}
MAX_EXAMPLES = 6


@pytest.fixture(scope="module")
def fuzzed(runs, tmp_path_factory, start_service):
    from permed.serve import Settings

    service = start_service(Settings(runs=runs, data_dir=tmp_path_factory.mktemp("fuzz"),
                                     database_url=None, rate_limit=0), USERS)
    yield service
    service.stop()


def _user(path: str) -> str:
    if path.startswith(("/v1/users", "/v1/audit")):
        return "ada"
    if path.endswith(("/card", "/metrics")):
        return "sam"
    return "alice"


def _fuzz(operation, service) -> tuple[list[str], int]:
    """Up to MAX_EXAMPLES generated requests of one operation: the failures, in words, and the
    number of requests sent."""
    failures: list[str] = []
    sent = []
    headers = {"Authorization": f"Bearer {service.keys[_user(operation.path)]}"}

    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        if operation.path.startswith("/v1/models/") and case.path_parameters:
            case.path_parameters["name"] = "bc"  # a served model: answers are exercised too
        sent.append(1)
        try:
            case.call_and_validate(headers=headers, checks=CHECKS)
        except (Exception, FailureGroup) as exc:  # noqa: BLE001 - reported below
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:600]}")

    run()
    return failures, len(sent)


def test_api_never_fails_and_keeps_its_schema(fuzzed):
    api = schemathesis.openapi.from_url(fuzzed.url + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 18
    results = [_fuzz(operation, fuzzed) for operation in operations]
    assert [f for failures, _ in results for f in failures] == []
    assert sum(sent for _, sent in results) >= 3 * len(operations)
