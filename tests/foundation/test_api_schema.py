"""schemathesis against /openapi.json, once per role: generated requests (valid by the schema,
and deliberately invalid ones) to every operation; no answer is a 5xx, and every answer has a
declared status, content type and body shape.

Bounded: a few examples per operation and mode, so each role takes seconds, not minutes.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from callcenter.app import create_app
from callcenter.context import AppContext
from tests.conftest import token

# A deeper run by hand: CALLCENTER_SCHEMATHESIS_EXAMPLES=100 (randomised beyond the default).
EXAMPLES_PER_OPERATION = int(os.environ.get("CALLCENTER_SCHEMATHESIS_EXAMPLES", "5"))

# Endpoints that do not end by themselves: the wallboard's server-sent events.
STREAMING = {"GET /api/v1/wallboard/stream"}

ROLES = {
    "agent": "1001",
    "lead": "lead1",
    "qa": "qa1",
    "admin": "admin",
    "department": "eng1",
}

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _run_operation(
    operation: Any, mode: GenerationMode, headers: dict[str, str], failures: list[str]
) -> None:
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=EXAMPLES_PER_OPERATION <= 5,  # the bounded CI run is the same every time
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def exercise(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=checks)

    try:
        exercise()
    except Unsatisfiable:
        pass  # nothing to make invalid: the operation takes no parameters
    except (Exception, BaseExceptionGroup) as exc:  # collected: one run reports them all
        failures.append(f"{operation.label} [{mode.value}]: {str(exc).strip()[:1500]}")


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_operation_keeps_its_contract(ctx: AppContext, role: str) -> None:
    app = create_app(ctx)
    with TestClient(app) as client:
        username = ROLES[role]
        headers = {"Authorization": f"Bearer {token(client, username)}"}
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        failures: list[str] = []
        started = time.monotonic()
        operations = 0
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result  # the schema itself is valid
            operation = result.ok()
            if operation.label in STREAMING:
                continue
            operations += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _run_operation(operation, mode, headers, failures)
        print(f"{role}: {operations} operations in {time.monotonic() - started:.1f} s")
    assert not failures, "\n\n".join(failures)


def test_extending_wrap_up_outside_wrap_up_is_a_conflict(client: TestClient) -> None:
    """Found by the run above: the refusal named an action the state table did not know, and
    the agent got a 500."""
    headers = {"Authorization": f"Bearer {token(client, '1001')}"}
    response = client.post(
        "/api/v1/agents/me/wrap-up", headers=headers, json={"action": "extend", "seconds": 60}
    )
    assert response.status_code == 409, response.text
    assert response.json()["details"] == {
        "transition": "extend_wrap_up",
        "state": "logged_out",
        "allowed_from": ["wrap_up"],
    }
