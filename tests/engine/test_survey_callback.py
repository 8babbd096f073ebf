"""End to end: a survey-mode callback (回访) placed by ticketing is called by the engine over
SIP, the customer keys 4, and ticketing's event reader records the attempt with score 4."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from callcenter.testkit.scenarios import survey_customer_scenario
from callcenter.testkit.sipp import sipp_agent
from tests.engine.conftest import TRUNK_PORT, EngineProcess, call_events, wait_for
from tests.tickets.conftest import MakeCtx, make_ctx  # noqa: F401  (fixture)
from tests.tickets.helpers import survey_commands
from tests.tickets.test_callbacks import callback_of, callbacks_toml, local, place, to_front_desk
from ticketing import consumers, services

pytestmark = pytest.mark.sip


def test_survey_callback_is_called_and_its_score_recorded(
    start_engine: Callable[..., EngineProcess],
    make_ctx: MakeCtx,  # noqa: F811
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    start_engine(lines=1, spares=1)  # its consumer group exists before ticketing publishes
    ctx = make_ctx(**{"callbacks.toml": callbacks_toml(mode="survey")})
    ticket_id = to_front_desk(ctx, local(2026, 12, 7, 10, 0), local(2026, 12, 7, 10, 20))
    cb = callback_of(ctx, ticket_id)
    trunk_xml = survey_customer_scenario(tmp_path / "trunk.xml", "4", 1500)
    trunk = sipp_agent(trunk_xml, local_port=TRUNK_PORT, media_port=46250, cwd=tmp_path)
    place(ctx, cb["id"], cb["scheduled_for"])  # ticketing publishes the survey originate
    (command,) = survey_commands(ctx)
    call_id = command.call_id
    assert "agent_uri" not in command.data
    try:
        wait_for(
            lambda: any(e.type == "call_ended" for e in call_events(redis_client, call_id)),
            60,
            f"the survey call {call_id} to end",
        )
    except AssertionError as exc:
        seen = [(e.type, e.data) for e in call_events(redis_client, call_id)]
        raise AssertionError(f"{exc}; events: {seen}") from None
    trunk.communicate(timeout=20)
    assert trunk.returncode == 0
    counts = consumers.consume(ctx, now=cb["scheduled_for"])
    assert counts["answered"] == 1 and counts["unanswered"] == 0, counts
    done = callback_of(ctx, ticket_id)
    assert (done["status"], done["result"], done["score"]) == ("done", "satisfied", 4), done
    assert done["history"][0]["call_id"] == call_id, done["history"]
    assert services.ticket_detail(ctx, ticket_id)["status"] == "callback"
    assert consumers.consume(ctx)["read"] == 0  # all acknowledged, nothing recorded twice
