"""Where a slot's outgoing legs go: SIP URIs for agents, transfer targets and outside
numbers. Free of pjsua2; the slot dials what these return.

Behind the SIP edge, outside numbers are dialled through it with ``;trunk=<code>`` (slots sit
on loopback and cannot reach a carrier themselves; the edge applies the trunk's prefix).
Without the edge (engine tests, a lab) the slot dials the trunk's address directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.schemas import TelephonyFile
from config.settings import SipSettings


def agent_uri(uri: str, sip: SipSettings) -> str:
    """An agent's phone: a full SIP URI as given, else an extension at the edge."""
    if uri.startswith(("sip:", "sips:")):
        return uri
    return f"sip:{uri}@{sip.edge_host}:{sip.edge_port}"


def trunk_uri(
    number: str, trunk_code: str, telephony: TelephonyFile, sip: SipSettings, *, via_edge: bool
) -> str:
    """An outside number over a trunk: through the edge when there is one."""
    if via_edge:
        return f"sip:{number}@{sip.edge_host}:{sip.edge_port};trunk={trunk_code}"
    trunk = telephony.trunks[trunk_code]
    return (
        f"sip:{trunk.outbound_prefix}{number}@{trunk.host}:{trunk.port};transport={trunk.transport}"
    )


def transfer_target_uri(
    target: str, telephony: TelephonyFile, sip: SipSettings, *, via_edge: bool
) -> str | None:
    """Only numbers listed in telephony.toml [transfer_targets] (by name or by number) may
    be dialled; None for anything else."""
    entry = telephony.transfer_targets.get(target)
    if entry is None:
        entry = next((t for t in telephony.transfer_targets.values() if t.number == target), None)
    if entry is None:
        return None
    if entry.trunk is None:
        return agent_uri(entry.number, sip)
    return trunk_uri(entry.number, entry.trunk, telephony, sip, via_edge=via_edge)


@dataclass(frozen=True)
class LegUris:
    """The three functions above bound to one slot's configuration."""

    telephony: TelephonyFile
    sip: SipSettings
    via_edge: bool

    def agent(self, uri: str) -> str:
        return agent_uri(uri, self.sip)

    def trunk(self, number: str, trunk_code: str) -> str:
        return trunk_uri(number, trunk_code, self.telephony, self.sip, via_edge=self.via_edge)

    def transfer_target(self, target: str) -> str | None:
        return transfer_target_uri(target, self.telephony, self.sip, via_edge=self.via_edge)
