"""SIPp scenarios: the XML files beside this module and the builders of generated ones.

A file is taken with :func:`scenario`, which copies it into a work directory with its
``@WORD@`` placeholders filled (SIPp refuses a ``[key]`` as the method or status a scenario
sends or expects, so these are filled before SIPp reads the file). Builders
(:mod:`.callers`, :mod:`.answerers`) write a scenario from Python arguments.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from callcenter.testkit.scenarios.answerers import (
    agent_scenario,
    customer_scenario,
    ringing_scenario,
    survey_customer_scenario,
)
from callcenter.testkit.scenarios.callers import (
    bench_caller_scenario,
    caller_scenario,
    dtmf,
    queue_then_talk,
    rejected_scenario,
)
from callcenter.testkit.scenarios.messages import SDP, pause, play, reply

SCENARIO_DIR = Path(__file__).parent

# Words a file may leave to the test; any other @WORD@ must be given.
DEFAULT_WORDS = {
    "STATUS": "200",  # register.xml: the answer to the authenticated REGISTER
    "VIA": "[local_ip]:[local_port]",  # register.xml: the Via's sent-by
    "URI_PARAMS": "",  # caller.xml: parameters of the request URI
    "CALLER": "13800138000",  # invite_rejected.xml: the From user
}

_copies = itertools.count()


class ScenarioError(ValueError):
    """A scenario file asked for a word the test did not give, or does not exist."""


def scenario(name: str, workdir: Path, **words: object) -> Path:
    """``name`` (``register.xml``) copied into ``workdir`` with each ``@WORD@`` replaced by the
    keyword of that name in lower case (``status=403``, ``verb="REFER"``) or its default."""
    source = SCENARIO_DIR / name
    if not source.is_file():
        raise ScenarioError(f"no SIPp scenario {name} in {SCENARIO_DIR}")
    values = {**DEFAULT_WORDS, **{key.upper(): str(value) for key, value in words.items()}}
    text = source.read_text()
    for word in sorted(set(re.findall(r"@([A-Z_]+)@", text))):
        if word not in values:
            raise ScenarioError(f"{name}: @{word}@ not given (a keyword {word.lower()}=...)")
        text = text.replace(f"@{word}@", values[word])
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / f"{source.stem}_{next(_copies)}.xml"
    target.write_text(text)
    return target


__all__ = [
    "SCENARIO_DIR",
    "SDP",
    "ScenarioError",
    "agent_scenario",
    "bench_caller_scenario",
    "caller_scenario",
    "customer_scenario",
    "dtmf",
    "pause",
    "play",
    "queue_then_talk",
    "rejected_scenario",
    "reply",
    "ringing_scenario",
    "scenario",
    "survey_customer_scenario",
]
