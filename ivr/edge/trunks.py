"""Trunks at the edge: their addresses, where a call towards each goes, and the dial plan a
slot's outside call must fit, as the entries of the ``rules`` htable (``ivr/edge/rules.py``):
data a running edge reloads, never script."""

from __future__ import annotations

import ipaddress
import re
import socket

from config.loader import CenterConfig
from config.schemas import Trunk
from config.settings import Settings
from ivr.edge.cfgtext import EdgeConfigError


def resolve_addresses(host: str, what: str) -> list[str]:
    """IP addresses for a trunk host: literals as they are, names resolved now."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_UDP)
    except OSError as exc:
        raise EdgeConfigError(f"{what}: cannot resolve {host!r}: {exc}") from None
    return sorted({str(info[4][0]) for info in infos})


def trunk_addresses(settings: Settings, center: CenterConfig) -> list[str]:
    """Where trunks send from: every trunk's host and ``sip.trunk_addresses``."""
    found: list[str] = []
    for index, address in enumerate(settings.sip.trunk_addresses):
        found.extend(resolve_addresses(address, f"sip.trunk_addresses[{index}]"))
    for code, trunk in center.telephony.trunks.items():
        found.extend(resolve_addresses(trunk.host, f"telephony.toml: trunks.{code}.host"))
    return list(dict.fromkeys(found))


def trusted_addresses(settings: Settings, center: CenterConfig) -> list[str]:
    """Addresses exempt from flood bans: trunk addresses, every trunk's host, and the
    configured exemptions (slots are exempt in the script itself)."""
    found = trunk_addresses(settings, center)
    for index, address in enumerate(settings.sip.edge.flood_exempt_addresses):
        found.extend(resolve_addresses(address, f"sip.edge.flood_exempt_addresses[{index}]"))
    return list(dict.fromkeys(found))


def trunk_target(code: str, trunk: Trunk) -> str:
    """Where a call to a number goes over this trunk, as ``<before>|<after>``: the request URI
    is ``<before>`` + the number + ``<after>`` (``route[TO_TRUNK]`` splits the value at ``|``;
    both halves are never empty, which db_text would read as NULL)."""
    if trunk.transport == "tls":
        raise EdgeConfigError(
            f"telephony.toml: trunks.{code}.transport: tls needs Kamailio's tls module towards "
            "trunks, which the edge does not set up; use udp or tcp"
        )
    host = trunk.host if ":" not in trunk.host else f"[{trunk.host}]"
    if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", host):
        raise EdgeConfigError(
            f"telephony.toml: trunks.{code}.host: {trunk.host!r} is not a host name or IP address"
        )
    if not re.fullmatch(r"\+?[0-9]*", trunk.outbound_prefix):
        raise EdgeConfigError(
            f"telephony.toml: trunks.{code}.outbound_prefix: {trunk.outbound_prefix!r}: digits only"
        )
    return f"sip:{trunk.outbound_prefix}|@{host}:{trunk.port};transport={trunk.transport}"


def dial_plan_patterns(center: CenterConfig) -> tuple[str, str | None]:
    """The dial plan as POSIX extended expressions (config/dialplan.py): the national one
    (applied to numbers not starting with 00) and the international one (None: none allowed)."""
    plan = center.telephony.dial_plan.plan()
    return plan.posix_national(), plan.posix_international()
