"""Schemathesis against the API's own OpenAPI schema, on a real server: no input that the
schema allows (or almost allows) may produce a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.serving.conftest import ADMIN, AUTH, LiveServer, settings_for

pytestmark = pytest.mark.slow
EXAMPLES_PER_OPERATION = 40


@pytest.fixture(scope="module")
def live(served_root: Path) -> Iterator[LiveServer]:
    with LiveServer(settings_for(served_root, BATCH_LIMIT=50)) as server:
        yield server


def test_no_operation_answers_5xx(live: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15  # every endpoint of the contract is in the schema
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def no_server_error(case: Any) -> None:
            # Both tokens on every call so that fuzzing reaches past authentication.
            case.call_and_validate(
                base_url=live.url, headers={**AUTH, **ADMIN}, checks=[not_a_server_error]
            )

        no_server_error()
