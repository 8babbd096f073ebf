"""The SIPp helpers under their former name, for the tests written against it.

They live in ``callcenter.testkit.sipp`` (shared with ``bench/``); new tests import them from
there. The ``no_sipp_left`` fixture stays here: it is pytest's, and the kit does not import
pytest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from callcenter.testkit.sipp import (
    SDP,
    SIPP_PCAPS,
    STARTED,
    RtpListener,
    agent_scenario,
    caller_scenario,
    customer_scenario,
    dtmf_pcap_with_pt,
    finished,
    kill_started,
    rejected_scenario,
    reply,
    ringing_scenario,
    sipp,
    sipp_agent,
    started,
    survey_customer_scenario,
    tone_pcap,
)

__all__ = [
    "SDP",
    "SIPP_PCAPS",
    "STARTED",
    "RtpListener",
    "agent_scenario",
    "caller_scenario",
    "customer_scenario",
    "dtmf_pcap_with_pt",
    "finished",
    "no_sipp_left",
    "rejected_scenario",
    "reply",
    "ringing_scenario",
    "sipp",
    "sipp_agent",
    "started",
    "survey_customer_scenario",
    "tone_pcap",
]


@pytest.fixture
def no_sipp_left() -> Iterator[None]:
    """A failed test leaves no SIPp holding its port for the next test (a module that starts
    SIPp with :func:`started` uses it with ``pytestmark = pytest.mark.usefixtures(...)``)."""
    yield
    kill_started()
