"""The dial plan through the API: click-to-call and supervise never reach a number outside it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import auth
from tests.cti.conftest import EngineSide


def test_click_to_call_to_a_number_outside_the_dial_plan_is_refused(
    client: TestClient, engine: EngineSide
) -> None:
    headers = auth(client, "1001")
    client.post("/api/v1/agents/me/login", headers=headers)
    # An international number looks like a long landline ("0" and 11 digits) to the number
    # classifier: before the dial plan it was dialled out.
    created = client.post(
        "/api/v1/customers", headers=headers, json={"name": "境外业主", "phone": "004420712345"}
    )
    assert created.status_code == 201, created.text
    refused = client.post(
        "/api/v1/agents/me/click-to-call", headers=headers, json={"number": "004420712345"}
    )
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["error_id"] == "number-not-allowed"
    assert "international number 004420712345 is not allowed" in body["message"]
    assert body["details"] == {"number": "004420712345"}
    assert engine.engine_commands("originate") == []


def test_supervise_rings_only_an_agents_extension(client: TestClient, engine: EngineSide) -> None:
    lead = auth(client, "lead1")
    refused = client.post(
        "/api/v1/calls/any-call/supervise",
        headers=lead,
        json={"mode": "listen", "extension": "13912345678"},
    )
    assert refused.status_code == 422, refused.text
    assert "13912345678" in refused.json()["message"]
    assert engine.commands("any-call") == []
