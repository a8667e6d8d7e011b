"""Schemathesis against the API's own OpenAPI spec: no 5xx and no response outside the schema.

Bounded for the normal suite: ``EXAMPLES`` cases per operation (a few hundred in all), with the
valid token so the generated requests reach the handlers instead of stopping at 401.
Jobs it manages to submit are removed from the session's queues and schedules afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import API_TEST_TOKEN

EXAMPLES = 20
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance, status_code_conformance]


@pytest.fixture
def drained(redis_client) -> Iterator[None]:
    yield
    from taskfleet_core.broker import schedule
    from taskfleet_core.tasks.queues import QUEUES

    for spec in QUEUES.values():  # delayed jobs wait in the queue's schedule, not its lists
        redis_client.delete(*spec.waiting_lists(), schedule.schedule_key(spec.name), schedule.messages_key(spec.name))


@pytest.mark.timeout(120)
def test_api_holds_its_openapi_contract_under_fuzzing(fleet_env: dict[str, str], drained: None) -> None:
    from taskfleet_api.main import create_api

    schema = schemathesis.openapi.from_asgi("/openapi.json", create_api())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    headers = {"Authorization": f"Bearer {API_TEST_TOKEN}"}
    tested = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
        tested += 1
    assert tested == len(operations)
