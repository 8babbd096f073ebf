"""Render the SIP edge's Kamailio configuration from the project's settings.

The edge is the only SIP address callers, trunks and softphones see. What it does, in the
order a request meets it (the ``kamailio.cfg`` this module writes says the same in comments):

1. flood check: an address sending more than ``pike_max_requests`` per ``pike_window_seconds``
   is banned for ``ban_seconds`` (pike alone blocks only while the rate stays high, so the
   ban lives in an htable with autoexpire); trunks and slots are exempt;
2. ``sanity_check`` and Max-Forwards;
3. from outside the slot set: scanner User-Agents dropped, then the body policy (Content-Type,
   size, NUL bytes, SDP ptime/payload types/line limits: pjsua2 2.15.1 must never parse it);
4. in-dialog requests: from outside only call control (no REFER, NOTIFY, SUBSCRIBE, MESSAGE,
   PUBLISH), following the Record-Route set, and only towards a slot (a forged Route set must
   not reach a trunk or a softphone);
5. REGISTER: digest auth (HA1 only, ``auth_db`` over ``db_text``; failures counted per address
   and banned past ``auth_fail_limit``), a Contact that is not the edge, a slot or a trunk,
   then ``usrloc``;
6. INVITE from a slot (``ds_is_from_list`` mode 2: IP and port, any transport): a registered
   agent extension, else the outbound trunk for numbers telephony.toml's dial plan allows;
7. INVITE from anyone else: only configured DIDs (others get 404) go to a free slot chosen by
   dispatcher algorithm 10 (call load, one call per slot), failing over a capped number of
   times, then 486;
8. replies from outside the slot set (softphones, trunks) travel towards a slot: the same body
   policy; a failing 2xx gets the refusal SDP (``screening.REFUSED_SDP``), other replies lose
   their body;
9. with ``sip.media_relay.rtpengine`` set, calls between a slot and a softphone have their
   SDP rewritten by rtpengine (``media_relay``).

The script itself is ``templates/kamailio.cfg`` with ``@@NAME@@`` placeholders; the pieces
rendered from settings live by concern: ``dispatcher`` (the slot set), ``trunks`` and
``rules`` (trunks, dial plan, realm: data in the ``rules`` htable), ``dids``, ``screening``
(scanners, Contacts, SDP policy, trusted sources), ``tls`` and ``stores`` (Redis for
ndb_redis and usrloc). Everything here is pure Python: nothing imports pjsua2.
"""

from __future__ import annotations

import ipaddress
import re
from importlib import resources
from urllib.parse import urlsplit

from config.loader import CenterConfig
from config.settings import Settings
from ivr.edge.cfgtext import EdgeConfigError, quote
from ivr.edge.dids import render_did_check
from ivr.edge.dispatcher import SLOT_SET, normalize_slot_uri
from ivr.edge.media_relay import render_module, render_routes
from ivr.edge.paths import EdgePaths, edge_paths
from ivr.edge.rules import rules
from ivr.edge.screening import (
    REFUSED_SDP,
    SDP_BAD_PATTERNS,
    render_contact_check,
    render_scanner_check,
    render_trusted_check,
)
from ivr.edge.stores import DB_REDIS_SCHEMAS, redis_server, usrloc_db_url, usrloc_key_prefix
from ivr.edge.tls import render_tls


def render_config(settings: Settings, center: CenterConfig, paths: EdgePaths) -> str:
    """The kamailio.cfg text for these settings (raises EdgeConfigError naming the problem)."""
    sip = settings.sip
    tuning = sip.edge
    try:
        address = ipaddress.ip_address(sip.edge_host)
    except ValueError:
        raise EdgeConfigError(f"sip.edge_host: {sip.edge_host!r} is not an IP address") from None
    if address.is_unspecified:
        # Record-Route and the probes' From need the one address peers can reach.
        raise EdgeConfigError(
            f"sip.edge_host: {sip.edge_host!r} listens everywhere; give the one address "
            "callers, trunks and softphones use"
        )
    host = f"[{address}]" if address.version == 6 else str(address)
    if not 0 < sip.edge_port < 65536:
        raise EdgeConfigError(f"sip.edge_port: {sip.edge_port} is not a port")
    domain = center.telephony.sip_domain
    if not re.fullmatch(r"[A-Za-z0-9.\-]+", domain):
        raise EdgeConfigError(f"telephony.toml: sip_domain: {domain!r} is not a domain name")
    if len(str(paths.ctl_socket)) > 100:
        # sun_path is 108 bytes; Kamailio fails late and obscurely past it.
        raise EdgeConfigError(f"sip.kamailio_ctl_socket: path too long: {paths.ctl_socket}")
    tls_listen, tls_module = render_tls(settings, paths, host)
    # The telephony rules are data the running edge reloads (ivr/edge/rules.py), not script:
    # built here too, so a wrong trunk (or an unresolvable host) is named before a start.
    rules(settings, center)
    values = {
        "TLS_LISTEN": tls_listen,
        "TLS_MODULE": tls_module,
        "LOG_LEVEL": str(tuning.log_level),
        "CHILDREN": str(tuning.children),
        "HOST": host,
        "PORT": str(sip.edge_port),
        "CTL": quote(f"unix:{paths.ctl_socket}"),
        "FR_TIMER": str(tuning.fr_timer_ms),
        "FR_INV_TIMER": str(tuning.fr_inv_timer_ms),
        "PIKE_WINDOW": str(tuning.pike_window_seconds),
        "PIKE_MAX": str(tuning.pike_max_requests),
        "BAN_TABLE": quote(f"ban=>size=8;autoexpire={tuning.ban_seconds};"),
        "BAN_SECONDS": str(tuning.ban_seconds),
        "DB_URL": quote(f"text://{paths.db_dir}"),
        "MAX_EXPIRES": str(tuning.register_max_expires),
        "DS_LIST": quote(str(paths.dispatcher_list)),
        "PING_FROM": quote(f"sip:edge@{host}:{sip.edge_port}"),
        "PING_INTERVAL": str(tuning.ping_interval_seconds),
        # A slot's load entry outlives the longest call the slots allow, then expires.
        "HASH_EXPIRE": str(sip.max_call_seconds + 60),
        "HASH_INITEXPIRE": str(max(tuning.fr_inv_timer_ms // 1000 + 30, 60)),
        "RELOAD_DELTA": str(tuning.reload_delta_seconds),
        "SLOT_SET": str(SLOT_SET),
        "MAX_ATTEMPTS": str(tuning.max_slot_attempts),
        # The digest realm is telephony.sip_domain, from the rules htable (live).
        "REALM": '"$sht(rules=>realm)"',
        "TRUSTED_CHECK": render_trusted_check().rstrip("\n"),
        "DID_CHECK": render_did_check(settings).rstrip("\n"),
        "SCANNER_CHECK": render_scanner_check(tuning.scanner_user_agents).rstrip("\n"),
        "CONTACT_CHECK": render_contact_check(settings),
        "REDIS_SERVER": quote(redis_server(settings.redis_url)),
        "DB_REDIS_SCHEMAS": quote(str(DB_REDIS_SCHEMAS)),
        "USRLOC_DB_URL": quote(usrloc_db_url(settings.redis_url)),
        "USRLOC_KEY_PREFIX": usrloc_key_prefix(settings.redis_prefix),
        "USRLOC_DB_MODE": str(tuning.usrloc_db_mode),
        # A tracked agent leg whose end the edge never saw (both ends gone) is forgotten then.
        "DIALOG_TIMEOUT": str(sip.max_call_seconds + 60),
        "EVENTS_STREAM": f"{settings.redis_prefix}:events",
        "PV_BUFFER": str(max(8192, 2 * tuning.max_body_bytes + 1024)),
        "AUTHFAIL_TABLE": quote(f"authfail=>size=8;autoexpire={tuning.auth_fail_window_seconds};"),
        "AUTH_FAIL_LIMIT": str(tuning.auth_fail_limit),
        "MAX_BODY": str(tuning.max_body_bytes),
        **SDP_BAD_PATTERNS,
        "REFUSED_SDP": REFUSED_SDP,
        "MAX_LINES": str(tuning.max_sdp_lines),
        "MAX_LINE": str(tuning.max_sdp_line_length),
        "MAX_LINE_PLUS_ONE": str(tuning.max_sdp_line_length + 1),
        "MEDIA_RELAY_MODULE": render_module(settings),
        "MEDIA_RELAY_ROUTES": render_routes(settings).rstrip("\n"),
    }
    text = (
        resources.files("ivr.edge").joinpath("templates/kamailio.cfg").read_text(encoding="utf-8")
    )
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    leftover = re.search(r"@@[A-Z_]+@@", text)
    if leftover:  # pragma: no cover - a template/value mismatch is a programming error
        raise AssertionError(f"unfilled placeholder {leftover.group(0)} in the edge template")
    return text


def edge_probe_address(settings: Settings) -> tuple[str, int]:
    """The edge's SIP address: where slots send every request, and where replies come from."""
    return settings.sip.edge_host, settings.sip.edge_port


def edge_uri(settings: Settings, user: str, trunk: str | None = None) -> str:
    """What a slot dials: an agent (``edge_uri(s, "1001")``) or an outside number.

    ``trunk`` names a trunk from telephony.toml for this call (a transfer target's trunk);
    without it the edge uses ``outbound_trunk``. Only slots may reach agents and trunks.
    """
    host = settings.sip.edge_host
    if ":" in host:
        host = f"[{host}]"
    suffix = f";trunk={trunk}" if trunk else ""
    return f"sip:{user}@{host}:{settings.sip.edge_port}{suffix}"


def uri_host_port(uri: str) -> tuple[str, int]:
    parts = urlsplit("//" + normalize_slot_uri(uri)[4:])
    return parts.hostname or "", parts.port or 5060


def edge_config_problems(settings: Settings, center: CenterConfig) -> list[str]:
    """What would stop the edge from starting with these settings ([] when fine).

    Meant for ``callcenter check-config``: the same checks ``Edge.start()`` makes before it
    runs Kamailio, without writing anything.
    """
    try:
        render_config(settings, center, edge_paths(settings))
    except EdgeConfigError as exc:
        return [f"SIP edge: {exc}"]
    return []
