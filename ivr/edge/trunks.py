"""Trunks at the edge: their addresses, the route towards them, the DIDs they carry and the
dial plan a slot's outside call must fit."""

from __future__ import annotations

import ipaddress
import re
import socket

from config.loader import CenterConfig
from config.schemas import Trunk
from config.settings import Settings
from ivr.edge.cfgtext import EdgeConfigError, quote


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


def trusted_addresses(settings: Settings, center: CenterConfig) -> list[str]:
    """Addresses exempt from flood bans: trunk addresses, every trunk's host, and the
    configured exemptions (slots are exempt in the script itself)."""
    found: list[str] = []
    for index, address in enumerate(settings.sip.trunk_addresses):
        found.extend(resolve_addresses(address, f"sip.trunk_addresses[{index}]"))
    for code, trunk in center.telephony.trunks.items():
        found.extend(resolve_addresses(trunk.host, f"telephony.toml: trunks.{code}.host"))
    for index, address in enumerate(settings.sip.edge.flood_exempt_addresses):
        found.extend(resolve_addresses(address, f"sip.edge.flood_exempt_addresses[{index}]"))
    return list(dict.fromkeys(found))


def _trunk_uri_expr(trunk: Trunk) -> str:
    """Kamailio expression for the request URI towards a trunk (number in ``$rU``)."""
    host = trunk.host if ":" not in trunk.host else f"[{trunk.host}]"
    if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", host):
        raise EdgeConfigError(f"trunk host {trunk.host!r} is not a host name or IP address")
    if not re.fullmatch(r"\+?[0-9]*", trunk.outbound_prefix):
        raise EdgeConfigError(f"trunk outbound_prefix {trunk.outbound_prefix!r}: digits only")
    return (
        f'"sip:{trunk.outbound_prefix}" + $rU + "@{host}:{trunk.port};transport={trunk.transport}"'
    )


def render_trunk_route(center: CenterConfig) -> str:
    telephony = center.telephony
    for code, trunk in telephony.trunks.items():
        if trunk.transport == "tls":
            raise EdgeConfigError(
                f"telephony.toml: trunks.{code}.transport: tls needs Kamailio's tls module "
                "(package kamailio-tls-modules), which the edge does not load; use udp or tcp"
            )
    if not telephony.trunks:
        return (
            '\txlog("L_NOTICE", "edge: call $ci from slot $si:$sp to $rU refused: no trunk\\n");\n'
            '\tsl_send_reply("403", "No outbound trunk configured");\n\texit;\n'
        )
    lines = ['\t$var(trunk) = "";']
    for code in telephony.trunks:
        # A slot may name a trunk explicitly (transfer targets): sip:NUMBER@edge;trunk=CODE
        lines.append(
            f"\tif ($(ru{{uri.param,trunk}}) == {quote(code)}) $var(trunk) = {quote(code)};"
        )
    if telephony.outbound_trunk:
        lines.append(f'\tif ($var(trunk) == "") $var(trunk) = {quote(telephony.outbound_trunk)};')
    for code, trunk in telephony.trunks.items():
        lines.append(f"\tif ($var(trunk) == {quote(code)}) {{")
        lines.append(f"\t\t$ru = {_trunk_uri_expr(trunk)};")
        lines.append(
            '\t\txlog("L_INFO", "edge: call $ci from slot $si:$sp to trunk ' + code + ' $ru\\n");'
        )
        lines.append("\t\troute(RELAY);")
        lines.append("\t}")
    lines.append('\txlog("L_NOTICE", "edge: call $ci from slot $si:$sp: no trunk for $ru\\n");')
    lines.append('\tsl_send_reply("403", "No outbound trunk for this call");')
    lines.append("\texit;")
    return "\n".join(lines) + "\n"


def trunk_addresses(settings: Settings, center: CenterConfig) -> list[str]:
    """Where trunks send from: every trunk's host and ``sip.trunk_addresses``."""
    found: list[str] = []
    for index, address in enumerate(settings.sip.trunk_addresses):
        found.extend(resolve_addresses(address, f"sip.trunk_addresses[{index}]"))
    for code, trunk in center.telephony.trunks.items():
        found.extend(resolve_addresses(trunk.host, f"telephony.toml: trunks.{code}.host"))
    return list(dict.fromkeys(found))


def render_did_check(settings: Settings, center: CenterConfig) -> str:
    # The configured DIDs are data (the `dids` htable, both forms of each number: trunks send
    # it with or without a leading "+"), reloaded live when telephony.toml changes.
    lines = ["\t$var(did) = 0;", "\tif ($sht(dids=>$rU) != $null) $var(did) = 1;"]
    only_trunks = settings.sip.edge.dids_from_trunks_only
    if only_trunks is None:
        only_trunks = settings.environment == "production"
    addresses = trunk_addresses(settings, center)
    if only_trunks and addresses:
        # A DID is the carrier's number: a call to it from anywhere else bypasses the carrier.
        lines.append("\t$var(from_trunk) = 0;")
        for address in addresses:
            lines.append(f'\tif ($si == "{address}") $var(from_trunk) = 1;')
        lines.append("\tif ($var(did) == 1 && $var(from_trunk) == 0) {")
        lines.append(
            '\t\txlog("L_NOTICE", "edge: INVITE from $si:$sp to DID $rU refused: not a trunk\\n");'
        )
        lines.append('\t\t$var(refused) = "not_from_trunk";')
        lines.append("\t\troute(CALL_REFUSED);")
        lines.append('\t\tsl_send_reply("403", "Forbidden");')
        lines.append("\t\texit;")
        lines.append("\t}")
    return "\n".join(lines) + "\n"


# telephony.toml settings rendered into the script itself: a running edge takes them only when
# it restarts. DIDs are data (ivr/edge/dids.py) and transfer targets are the engine's: both live.
EDGE_RESTART_SETTINGS = ("sip_domain", "trunks", "outbound_trunk", "dial_plan")


def edge_restart_needed(old: CenterConfig, new: CenterConfig) -> list[str]:
    """The dotted telephony settings changed between two configurations that a running edge
    takes only at its next restart."""
    return [
        f"telephony.{name}"
        for name in EDGE_RESTART_SETTINGS
        if getattr(old.telephony, name) != getattr(new.telephony, name)
    ]


def render_dial_plan_check(center: CenterConfig) -> str:
    """Sets $var(dialable) for $rU by telephony.toml's dial plan (config/dialplan.py)."""
    plan = center.telephony.dial_plan.plan()
    lines = [
        "\t\t$var(dialable) = 0;",
        f'\t\tif (!($rU =~ "^00") && $rU =~ {quote(plan.posix_national())}) $var(dialable) = 1;',
    ]
    international = plan.posix_international()
    if international:
        lines.append(f"\t\tif ($rU =~ {quote(international)}) $var(dialable) = 1;")
    return "\n".join(lines)
