"""The SIPp helpers under their former name, for the tests written against it.

They live in ``callcenter.testkit`` (shared with ``bench/``): media in ``rtp``, scenario
builders in ``scenarios``, the SIPp runner in ``sipp``; new tests import them from there. The
``no_sipp_left`` fixture stays here: it is pytest's, and the kit does not import pytest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from callcenter.testkit.rtp import SIPP_PCAPS, RtpListener, dtmf_pcap_with_pt, tone_pcap
from callcenter.testkit.scenarios import (
    SDP,
    agent_scenario,
    caller_scenario,
    customer_scenario,
    rejected_scenario,
    reply,
    ringing_scenario,
    survey_customer_scenario,
)
from callcenter.testkit.sipp import STARTED, finished, kill_started, sipp, sipp_agent

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
    "survey_customer_scenario",
    "tone_pcap",
]


@pytest.fixture
def no_sipp_left() -> Iterator[None]:
    """A failed test leaves no SIPp holding its port for the next test (a module that starts
    SIPp uses it with ``pytestmark = pytest.mark.usefixtures(...)``)."""
    yield
    kill_started()
