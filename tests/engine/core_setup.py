"""One slot configuration for the call core's tests, built from the typed schemas (no
files, no SIP): two queues, a DID, an outbound trunk, transfer targets and a few prompts."""

from __future__ import annotations

from typing import Any

from config.schemas import MenuFile, QueuesFile, TelephonyFile
from config.settings import SipSettings
from ivr.call_core.state import CallPhase, CallSetup, Clock, Conversation
from ivr.leg_uris import LegUris
from ivr.menu import MenuRunner
from ivr.prompts import PromptFile

SIP = SipSettings(edge_host="127.0.0.9", edge_port=5070)
TELEPHONY = TelephonyFile.model_validate(
    {
        "dids": [{"number": "4000"}],
        "trunks": {"carrier": {"host": "127.0.0.5", "port": 5080, "outbound_prefix": "9"}},
        "outbound_trunk": "carrier",
        "transfer_targets": {
            "billing": {"name": {"zh-CN": "账务", "en": "Billing"}, "number": "8001"},
            "lawyer": {
                "name": {"zh-CN": "律师", "en": "Lawyer"},
                "number": "13800000000",
                "trunk": "carrier",
            },
        },
    }
)
QUEUES = QueuesFile.model_validate(
    {
        "queues": {
            "sales": {"name": {"zh-CN": "销售", "en": "Sales"}, "ring_timeout_seconds": 20},
            "repair": {"name": {"zh-CN": "维修", "en": "Repair"}, "announce_every_seconds": 0},
        }
    }
)
MENU = MenuFile.model_validate(
    {"entry": "main", "nodes": {"main": {"kind": "hangup", "prompt": {"text": "bye"}}}}
)
PROMPTS = {
    "hold.music": PromptFile("/p/hold.wav", 30.0),
    "survey.thanks": PromptFile("/p/thanks.wav", 2.0),
    "queue.position": PromptFile("/p/position.wav", 1.5),
    "queue.wait": PromptFile("/p/wait.wav", 2.5),
    "main.prompt": PromptFile("/p/main.wav", 1.0),
}
SETUP = CallSetup(
    uris=LegUris(TELEPHONY, SIP, via_edge=True),
    queues=QUEUES.queues,
    prompts=PROMPTS,
    menu=MENU,
    dids={"4000": "main"},
    max_call_seconds=3600.0,
    short_abandon_seconds=5.0,
)


def one_node_runner() -> MenuRunner:
    """A real menu runner on a one-node menu (the core only starts it)."""
    return MenuRunner(MENU, {"main.prompt": 1.0})


def clock(*, max_until: float = 1000.0, **deadlines: Any) -> Clock:
    """A call's clock whose maximum duration is far off unless the test says otherwise."""
    return Clock(max_until=max_until, **deadlines)


def conv_in(state: CallPhase = CallPhase.menu, *, direction: str = "in", **kw: Any) -> Conversation:
    """A call in ``state``; ``kw``: the Conversation's fields (its records built by the test)."""
    fields: dict[str, Any] = {"caller": "1001", "clock": clock(), **kw}
    return Conversation(call_id="c1", direction=direction, did="4000", state=state, **fields)


def conv_out(state: CallPhase = CallPhase.originating, **kw: Any) -> Conversation:
    return conv_in(state, direction="out", **kw)
