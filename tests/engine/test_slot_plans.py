"""The slot's pure helpers beside the call core: where legs are dialled and the survey's
menu, without SIP (fast; no lock needed)."""

from __future__ import annotations

import pytest

from ivr import leg_uris
from ivr.menu import Emit, Hangup, PlayPrompts
from ivr.prompts import PromptFile
from ivr.survey import SURVEY_DIGIT_SECONDS, survey_runner
from tests.engine.core_setup import SIP, TELEPHONY


def test_agent_uri_is_an_extension_at_the_edge_unless_a_full_uri() -> None:
    assert leg_uris.agent_uri("1001", SIP) == "sip:1001@127.0.0.9:5070"
    assert leg_uris.agent_uri("sip:a@10.0.0.1", SIP) == "sip:a@10.0.0.1"


def test_trunk_numbers_go_through_the_edge_or_straight_to_the_trunk() -> None:
    via = leg_uris.trunk_uri("555", "carrier", TELEPHONY, SIP, via_edge=True)
    assert via == "sip:555@127.0.0.9:5070;trunk=carrier"
    direct = leg_uris.trunk_uri("555", "carrier", TELEPHONY, SIP, via_edge=False)
    assert direct == "sip:9555@127.0.0.5:5080;transport=udp"


def test_only_listed_transfer_targets_are_dialled() -> None:
    assert leg_uris.transfer_target_uri("billing", TELEPHONY, SIP, via_edge=True) == (
        "sip:8001@127.0.0.9:5070"
    )
    by_number = leg_uris.transfer_target_uri("13800000000", TELEPHONY, SIP, via_edge=True)
    assert by_number == "sip:13800000000@127.0.0.9:5070;trunk=carrier"
    assert leg_uris.transfer_target_uri("12345", TELEPHONY, SIP, via_edge=True) is None


def test_survey_asks_for_one_listed_key_and_thanks() -> None:
    question, thanks = PromptFile("/q.wav", 2.0), PromptFile("/t.wav", 1.0)
    runner = survey_runner({"digits": "123"}, question, thanks, {"system.goodbye": 1.0})
    assert PlayPrompts(("survey.prompt",)) in runner.start(0.0)
    actions = runner.digit("2", 0.5)
    collected = [a for a in actions if isinstance(a, Emit) and a.type == "digits_collected"]
    assert collected and collected[0].data["value"] == "2"
    assert runner.collected == {"satisfaction": "2"}
    later = runner.tick(0.5 + thanks.duration + 0.1)
    assert any(isinstance(a, Hangup) for a in later)


def test_survey_without_a_key_ends_after_its_retries() -> None:
    runner = survey_runner(
        {"digits": "12", "variable": "score"},
        PromptFile("/q.wav", 1.0),
        PromptFile("/t.wav", 1.0),
        {"system.goodbye": 1.0},
    )
    now = 0.0
    actions = runner.start(now)
    for _ in range(20):
        now += SURVEY_DIGIT_SECONDS + 2.0
        actions = runner.tick(now)
        if any(isinstance(a, Hangup) for a in actions):
            break
    assert any(isinstance(a, Hangup) for a in actions)
    assert "score" not in runner.collected


@pytest.mark.parametrize("digits", ["", "12a", "1234567890123"])
def test_survey_refuses_bad_keys(digits: str) -> None:
    with pytest.raises(ValueError, match=r"survey\.digits"):
        survey_runner({"digits": digits}, PromptFile("/q", 1), PromptFile("/t", 1), {})


def test_dial_plan_binds_the_slot_configuration() -> None:
    plan = leg_uris.LegUris(TELEPHONY, SIP, via_edge=False)
    assert plan.agent("1001") == "sip:1001@127.0.0.9:5070"
    assert plan.trunk("555", "carrier") == "sip:9555@127.0.0.5:5080;transport=udp"
    assert plan.transfer_target("lawyer") == "sip:913800000000@127.0.0.5:5080;transport=udp"
    assert plan.transfer_target("nobody") is None
