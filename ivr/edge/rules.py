"""The edge's telephony rules as data: the ``rules`` htable, loaded from the db_text table
``db/rules`` and reloaded live (``kamcmd htable.reload rules``), like the DIDs
(``ivr/edge/dids.py``). A ``telephony`` version that changes the trunks, the outbound trunk,
the dial plan or the domain reaches a running edge without a restart: calls in progress are
not touched (the table is read only for new requests), and the next call uses the new rules.

Keys (``kamailio.cfg`` reads them; values are strings unless marked int):

- ``realm``: the digest realm (``telephony.sip_domain``);
- ``trunks`` (int): how many trunks there are; ``trunk.<code>``: ``<before>|<after>``, the
  request URI towards that trunk being ``<before>`` + number + ``<after>``
  (``trunks.trunk_target``); ``outbound``: the code of ``outbound_trunk``, absent when none;
- ``plan.national``, ``plan.international``: the dial plan's POSIX expressions, the second
  absent when no international prefix is allowed;
- ``peer.<address>`` (int): 1 for a trunk's address (``sip.trunk_addresses`` and every trunk's
  host: flood-exempt, may call DIDs when ``dids_from_trunks_only``, never a softphone's
  Contact), 2 for ``sip.edge.flood_exempt_addresses`` (flood-exempt only);
  ``trunk_addresses`` (int): how many trunk addresses there are (none: DIDs are open to all).
"""

from __future__ import annotations

from pathlib import Path

from config.loader import CenterConfig
from config.settings import Settings
from ivr.edge.dids import DIDS_HEADER
from ivr.edge.subscribers import write_table
from ivr.edge.trunks import dial_plan_patterns, trunk_addresses, trunk_target, trusted_addresses

RULES_TABLE = "rules"
TRUNK_ADDRESS = 1
FLOOD_EXEMPT = 2


def rules(settings: Settings, center: CenterConfig) -> dict[str, str | int]:
    """The rules for these settings (raises EdgeConfigError naming a wrong telephony key)."""
    telephony = center.telephony
    entries: dict[str, str | int] = {"realm": telephony.sip_domain}
    entries["trunks"] = len(telephony.trunks)
    for code, trunk in telephony.trunks.items():
        entries[f"trunk.{code}"] = trunk_target(code, trunk)
    if telephony.outbound_trunk:
        entries["outbound"] = telephony.outbound_trunk
    national, international = dial_plan_patterns(center)
    entries["plan.national"] = national
    if international:
        entries["plan.international"] = international
    trunks = trunk_addresses(settings, center)
    for address in trusted_addresses(settings, center):
        kind = TRUNK_ADDRESS if address in trunks else FLOOD_EXEMPT
        entries[f"peer.{address}"] = kind
        if ":" in address:  # an IPv6 Contact host is written in brackets
            entries[f"peer.[{address}]"] = kind
    entries["trunk_addresses"] = len(trunks)
    return entries


def _field(value: str) -> str:
    """A db_text field: ``:`` separates fields, ``\\`` escapes."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def render_rules_table(settings: Settings, center: CenterConfig) -> str:
    lines = [DIDS_HEADER]  # htable's columns, as for the DIDs
    for key, value in rules(settings, center).items():
        kind = 1 if isinstance(value, int) else 0  # value_type: 0 string, 1 integer
        lines.append(f"{_field(key)}:0:{kind}:{_field(str(value))}:0")
    return "\n".join(lines) + "\n"


def write_rules_table(db_dir: Path, text: str) -> bool:
    """Write the rendered table if it differs; whether it changed."""
    return write_table(db_dir / RULES_TABLE, text)
