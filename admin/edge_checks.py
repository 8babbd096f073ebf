"""The SIP edge's refusals of a telephony.toml version, as problems a page can translate.

The edge (``ivr/edge``) says why it cannot use a version in one English line; the editor's
page should say it in its reader's language. The lines a telephony.toml edit can cause are
recognised here by their shape, and the problem's ``context`` gets the refusal's id
(``check``, as for the files' own checks in ``config/checks.py``) and the values it names.
A line not listed keeps its English text behind the translated prefix (never an empty
message). ``tests/foundation/test_config_checks.py`` makes the listed refusals happen for real, so a
changed wording in ``ivr/edge`` shows up there.
"""

from __future__ import annotations

import re

from config.loader import Problem

EDGE_PREFIX = "SIP edge: "

# id: the refusal's English line as the edge writes it, with the values it names in braces
EDGE_CHECKS: dict[str, str] = {
    "edge_domain": "telephony.toml: sip_domain: {domain} is not a domain name",
    "edge_trunk_tls": "telephony.toml: trunks.{code}.transport: tls needs Kamailio's tls module "
    "towards trunks, which the edge does not set up; use udp or tcp",
    "edge_trunk_host": "telephony.toml: trunks.{code}.host: {host} is not a host name or IP "
    "address",
    "edge_trunk_resolve": "telephony.toml: trunks.{code}.host: cannot resolve {host}: {reason}",
    "edge_trunk_prefix": "telephony.toml: trunks.{code}.outbound_prefix: {prefix}: digits only",
    "edge_quote": "value {value} cannot be used in the edge configuration",
}


def _pattern(template: str) -> re.Pattern[str]:
    """The line a template gives, each ``{name}`` read back as a named group."""
    pieces = re.split(r"\{(\w+)\}", template)  # text, name, text, name, ..., text
    return re.compile(
        "".join(
            re.escape(piece) if index % 2 == 0 else f"(?P<{piece}>.+?)"
            for index, piece in enumerate(pieces)
        ),
        re.S,
    )


_TELEPHONY_KEY = re.compile(r"telephony\.toml: (?P<key>[A-Za-z0-9_.\-]+): ")
_PATTERNS = {check: _pattern(template) for check, template in EDGE_CHECKS.items()}


def edge_problem(line: str) -> Problem:
    """One of the edge's refusal lines as a problem of kind ``edge``."""
    message = line.removeprefix(EDGE_PREFIX)
    context: dict[str, str] = {"message": message}
    for check, pattern in _PATTERNS.items():
        found = pattern.fullmatch(message)
        if found:
            context.update(found.groupdict(), check=check)
            break
    blamed = _TELEPHONY_KEY.match(message)  # shown beside its field on the editor
    return Problem("", blamed["key"] if blamed else "", line, "edge", dict(context))
