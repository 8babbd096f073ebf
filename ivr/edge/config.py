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
   times, then 486.

Everything here is pure Python: nothing imports pjsua2.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from config.loader import CenterConfig
from config.schemas import Trunk
from config.settings import Settings

# The dispatcher set holding the engine's slots.
SLOT_SET = 1


class EdgeConfigError(ValueError):
    """The settings or telephony file ask for something the edge cannot do."""


@dataclass(frozen=True)
class EdgePaths:
    """Where the edge's files live: everything under ``<state_dir>/kamailio/``."""

    directory: Path
    config: Path  # kamailio.cfg
    dispatcher_list: Path  # the slot list Kamailio reads at start
    db_dir: Path  # db_text database: the `subscriber` and `version` tables
    ctl_socket: Path  # binrpc socket for kamcmd
    log: Path  # Kamailio's stderr
    tls_dir: Path  # the self-signed certificate generated when none is configured
    runtime_dir: Path


def edge_paths(settings: Settings) -> EdgePaths:
    directory = (settings.state_dir / "kamailio").resolve()
    return EdgePaths(
        directory=directory,
        config=directory / "kamailio.cfg",
        dispatcher_list=directory / "dispatcher.list",
        db_dir=directory / "db",
        ctl_socket=Path(settings.sip.kamailio_ctl_socket),
        log=directory / "kamailio.log",
        tls_dir=directory / "tls",
        runtime_dir=directory / "run",
    )


_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})$")


def normalize_slot_uri(uri: str) -> str:
    """``"127.0.0.1:21000"`` or ``"sip:127.0.0.1:21000"`` -> ``"sip:127.0.0.1:21000"``.

    Slots are plain UDP/TCP SIP peers addressed by host and port; parameters (``;transport=``)
    are refused because ``ds_is_from_list`` would then match only that transport.
    """
    text = uri.strip()
    bare = text[4:] if text.startswith("sip:") else text
    match = _HOST_PORT.match(bare)
    if not match or not 0 < int(match["port"]) < 65536:
        raise EdgeConfigError(
            f"slot address {uri!r}: expected host:port or sip:host:port (e.g. sip:127.0.0.1:21000)"
        )
    return f"sip:{match['host']}:{int(match['port'])}"


def slot_duid(uri: str) -> str:
    """The dispatcher's unique id for a slot (call-load counts are kept per duid)."""
    return re.sub(r"[^A-Za-z0-9]", "_", normalize_slot_uri(uri)[4:])


def slot_attrs(uri: str) -> str:
    # maxload=1: a slot carries one conversation; the dispatcher stops choosing it while busy.
    return f"duid={slot_duid(uri)};maxload=1"


def render_dispatcher_list(slot_uris: list[str]) -> str:
    lines = [
        "# Rendered by ivr/edge/config.py: the engine's slots (set, uri, flags, priority, attrs).",
        "# Changed at run time with dispatcher.add/remove, which keep call-load counts;",
        "# dispatcher.reload would wipe them and is never used.",
    ]
    for uri in dict.fromkeys(normalize_slot_uri(u) for u in slot_uris):
        lines.append(f"{SLOT_SET} {uri} 0 0 {slot_attrs(uri)}")
    return "\n".join(lines) + "\n"


def _quote(value: str) -> str:
    """A Kamailio double-quoted string literal."""
    if any(ch in value for ch in '"\\\n\r'):
        raise EdgeConfigError(f"value {value!r} cannot be used in the edge configuration")
    return f'"{value}"'


def _addresses(host: str, what: str) -> list[str]:
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
        found.extend(_addresses(address, f"sip.trunk_addresses[{index}]"))
    for code, trunk in center.telephony.trunks.items():
        found.extend(_addresses(trunk.host, f"telephony.toml: trunks.{code}.host"))
    for index, address in enumerate(settings.sip.edge.flood_exempt_addresses):
        found.extend(_addresses(address, f"sip.edge.flood_exempt_addresses[{index}]"))
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


def _render_trunk_route(center: CenterConfig) -> str:
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
            f"\tif ($(ru{{uri.param,trunk}}) == {_quote(code)}) $var(trunk) = {_quote(code)};"
        )
    if telephony.outbound_trunk:
        lines.append(f'\tif ($var(trunk) == "") $var(trunk) = {_quote(telephony.outbound_trunk)};')
    for code, trunk in telephony.trunks.items():
        lines.append(f"\tif ($var(trunk) == {_quote(code)}) {{")
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
        found.extend(_addresses(address, f"sip.trunk_addresses[{index}]"))
    for code, trunk in center.telephony.trunks.items():
        found.extend(_addresses(trunk.host, f"telephony.toml: trunks.{code}.host"))
    return list(dict.fromkeys(found))


def _render_did_check(settings: Settings, center: CenterConfig) -> str:
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


def _render_scanner_check(user_agents: list[str]) -> str:
    """Drop requests from known scanners' User-Agents (sipvicious sends "friendly-scanner")."""
    words = []
    for index, agent in enumerate(user_agents):
        if not re.fullmatch(r"[A-Za-z0-9 _.\-]+", agent):
            raise EdgeConfigError(
                f"sip.edge.scanner_user_agents[{index}]: {agent!r}: letters, digits, space, "
                "'.', '_' and '-' only"
            )
        words.append(agent.lower().replace(".", "[.]"))
    if not words:
        return ""
    pattern = "|".join(words)
    return (
        f'\tif ($(ua{{s.tolower}}) =~ "({pattern})") {{\n'
        '\t\txlog("L_NOTICE", "edge: scanner $rm from $si:$sp (User-Agent $ua) dropped\\n");\n'
        "\t\texit;\n"
        "\t}\n"
    )


def _render_contact_check(settings: Settings, center: CenterConfig) -> str:
    """Contact hosts a softphone may not register: the edge, the slots' host, trunks."""
    forbidden = [settings.sip.edge_host, settings.sip.slot_host]
    forbidden.extend(trunk_addresses(settings, center))
    lines = []
    for address in dict.fromkeys(forbidden):
        for form in (address, f"[{address}]") if ":" in address else (address,):
            lines.append(f'\tif ($var(chost) == "{form}") $var(bad) = 1;')
    if not ipaddress.ip_address(settings.sip.edge_host).is_loopback:
        # An edge on a real address: a loopback Contact would point at the edge's own host.
        lines.append('\tif ($var(chost) =~ "^(127[.]|\\[?::1\\]?$|localhost$)") $var(bad) = 1;')
    return "\n".join(lines)


def _redis_server(url: str) -> str:
    """ndb_redis's server definition (name ``cc``) for the center's Redis URL."""
    parsed = urlsplit(url)
    if parsed.scheme not in ("redis", "unix"):
        raise EdgeConfigError(f"redis_url: {url!r}: the edge speaks redis:// or unix:// only")
    db = (parsed.path or "/0").strip("/") or "0"
    if parsed.scheme == "unix":
        db = dict(parse_qsl(parsed.query)).get("db", "0")
        target = f"unix={parsed.path}"
    else:
        target = f"addr={parsed.hostname or '127.0.0.1'};port={parsed.port or 6379}"
    if not db.isdigit():
        raise EdgeConfigError(f"redis_url: {url!r}: database {db!r} is not a number")
    parts = ["name=cc", target, f"db={db}"]
    if parsed.password:
        if re.search(r"[;\s\"]", parsed.password):
            raise EdgeConfigError(
                "redis_url: the edge cannot pass a password with ';', '\"' or space"
            )
        parts.append(f"pass={unquote(parsed.password)}")
    return ";".join(parts)


def tls_files(settings: Settings, paths: EdgePaths) -> tuple[Path, Path]:
    """The TLS listener's certificate and private key (PEM): the configured files, else the
    self-signed pair generated under ``paths.tls_dir`` (``Edge.render`` makes it)."""
    sip = settings.sip
    if bool(sip.tls_certificate) != bool(sip.tls_private_key):
        raise EdgeConfigError("sip.tls_certificate and sip.tls_private_key go together")
    if sip.tls_certificate:
        return Path(sip.tls_certificate).resolve(), Path(sip.tls_private_key).resolve()
    if settings.environment == "production":
        raise EdgeConfigError(
            f"sip.tls_port: {sip.tls_port}: production needs sip.tls_certificate and "
            "sip.tls_private_key (a self-signed certificate is generated only for the demo)"
        )
    return paths.tls_dir / "edge.crt", paths.tls_dir / "edge.key"


def _render_tls(settings: Settings, paths: EdgePaths, host: str) -> tuple[str, str]:
    """The TLS listener's core lines and the tls module's, or nothing when tls_port is 0."""
    sip = settings.sip
    if not sip.tls_port:
        return "", ""
    if sip.tls_port == sip.edge_port:
        raise EdgeConfigError(f"sip.tls_port: {sip.tls_port} is already the UDP/TCP port")
    certificate, key = tls_files(settings, paths)
    listen = f"enable_tls=yes\nlisten=tls:{host}:{sip.tls_port}\n"
    module = "\n".join(
        [
            "# Debian's kamailio-tls-modules: SIP over TLS for softphones (no client certs).",
            'loadmodule "tls.so"',
            f'modparam("tls", "certificate", {_quote(str(certificate))})',
            f'modparam("tls", "private_key", {_quote(str(key))})',
            'modparam("tls", "tls_method", "TLSv1.2+")',
            'modparam("tls", "verify_certificate", 0)',
            'modparam("tls", "require_certificate", 0)',
            "",
        ]
    )
    return listen, module


DB_REDIS_SCHEMAS = Path("/usr/share/kamailio/db_redis/kamailio")  # kamailio-redis-modules
LOCATION_TABLE_VERSION = 9  # the version the location schema file and usrloc expect


def usrloc_db_url(url: str) -> str:
    """db_redis's URL (``redis://[user[:password]@]host:port/db``) for the center's Redis."""
    parsed = urlsplit(url)
    if parsed.scheme != "redis":
        raise EdgeConfigError(
            f"redis_url: {url!r}: the edge keeps registrations in Redis over TCP (redis://) only"
        )
    db = (parsed.path or "/0").strip("/") or "0"
    if not db.isdigit():
        raise EdgeConfigError(f"redis_url: {url!r}: database {db!r} is not a number")
    auth = ""
    if parsed.password:
        if re.search(r"[@/:\s\"]", unquote(parsed.password)):
            raise EdgeConfigError(
                "redis_url: the edge cannot pass a password with '@', '/', ':', '\"' or space"
            )
        auth = f"{unquote(parsed.username or '')}:{unquote(parsed.password)}@"
    host = parsed.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"redis://{auth}{host}:{parsed.port or 6379}/{db}"


def _render_dial_plan_check(center: CenterConfig) -> str:
    """Sets $var(dialable) for $rU by telephony.toml's dial plan (config/dialplan.py)."""
    plan = center.telephony.dial_plan.plan()
    lines = [
        "\t\t$var(dialable) = 0;",
        f'\t\tif (!($rU =~ "^00") && $rU =~ {_quote(plan.posix_national())}) $var(dialable) = 1;',
    ]
    international = plan.posix_international()
    if international:
        lines.append(f"\t\tif ($rU =~ {_quote(international)}) $var(dialable) = 1;")
    return "\n".join(lines)


def _render_trusted_check(addresses: list[str]) -> str:
    lines = ["\t$var(trusted) = 0;"]
    lines.append(f'\tif (ds_is_from_list("{SLOT_SET}", "2")) $var(trusted) = 1;')
    for address in addresses:
        lines.append(f'\tif ($si == "{address}") $var(trusted) = 1;')
    return "\n".join(lines) + "\n"


# Regular expressions of the SDP policy (POSIX extended, as Kamailio's =~ runs them), matched
# against "\n" + body + "\n"; \r and \n are Kamailio string escapes.
_BAD_PT = "(12[89]|1[3-9][0-9]|[2-9][0-9][0-9]|[0-9]{4,})"  # 128 and up
SDP_BAD_PATTERNS = {
    # a=ptime / a=maxptime other than 1 to 3 digits (pjmedia 2.15.1 overflows on 4294967295)
    "BAD_PTIME": r"[\r\n]a=(max)?ptime:([^1-9]|[1-9][^0-9\r\n]|[1-9][0-9][^0-9\r\n]"
    r"|[1-9][0-9][0-9][^\r\n])",
    # an m= line (proto with a "/", e.g. RTP/AVP) listing a payload type above 127
    "BAD_PT_MEDIA": r"[\r\n]m=[^\r\n]*/[^ \r\n]*( [^ \r\n]+)* " + _BAD_PT + r"[ \r\n]",
    # rtpmap / fmtp for a payload type above 127, or not a number
    "BAD_PT_ATTRIBUTE": r"[\r\n]a=(rtpmap|fmtp):([^0-9]|" + _BAD_PT[1:],
}

_TEMPLATE = r"""#!KAMAILIO
#
# The SIP edge of the call center. Rendered by ivr/edge/config.py from the project's settings
# (config/settings.py [sip] and config/defaults/telephony.toml): do not edit, it is rewritten
# at every start. See docs/edge.md.
#

####### core
debug=@@LOG_LEVEL@@
log_stderror=yes
log_prefix="{$mt $hdr(CSeq) $ci} "
memdbg=5
memlog=5
children=@@CHILDREN@@
tcp_children=@@CHILDREN@@
auto_aliases=no
listen=udp:@@HOST@@:@@PORT@@
listen=tcp:@@HOST@@:@@PORT@@
@@TLS_LISTEN@@alias=@@DOMAIN@@
server_header="Server: callcenter-edge"
user_agent_header="User-Agent: callcenter-edge"
sip_warning=0
tcp_connection_lifetime=3605
# The body policy hex-encodes bodies (NUL check): room for max_body_bytes twice over.
pv_buffer_size=@@PV_BUFFER@@

####### modules (all in Debian's base `kamailio` package)
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "ctl.so"
loadmodule "cfg_rpc.so"
loadmodule "db_text.so"
loadmodule "htable.so"
loadmodule "pike.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
loadmodule "dispatcher.so"
loadmodule "nathelper.so"
# Debian's kamailio-redis-modules: calls turned away here are reported on the events stream;
# registrations live in the center's Redis (db_redis), where a restarted edge finds them.
loadmodule "ndb_redis.so"
loadmodule "db_redis.so"
@@TLS_MODULE@@
modparam("ctl", "binrpc", @@CTL@@)

# The center's Redis. A refused call is reported with one XADD; Redis being away must neither
# stop the edge from starting nor hold a SIP worker for long.
modparam("ndb_redis", "server", @@REDIS_SERVER@@)
modparam("ndb_redis", "init_without_redis", 1)
modparam("ndb_redis", "connect_timeout", 500)
modparam("ndb_redis", "cmd_timeout", 500)

# A slot that sends no provisional reply within fr_timer is treated as dead (next slot);
# fr_inv_timer is the ringing time allowed once a softphone or trunk answered with 1xx.
modparam("tm", "fr_timer", @@FR_TIMER@@)
modparam("tm", "fr_inv_timer", @@FR_INV_TIMER@@)
modparam("tm", "failure_reply_mode", 3)

# Record-Route is mandatory: call-load counts are released only when the edge sees the BYE.
modparam("rr", "enable_full_lr", 0)
modparam("rr", "append_fromtag", 0)

# Flood detection: pike alone blocks only while the rate stays high; the lasting ban is the
# `ban` htable, whose entries expire by themselves.
modparam("pike", "sampling_time_unit", @@PIKE_WINDOW@@)
modparam("pike", "reqs_density_per_unit", @@PIKE_MAX@@)
modparam("pike", "remove_latency", 4)
modparam("htable", "htable", @@BAN_TABLE@@)
# Failed digest authentications per address; an entry expires auth_fail_window after its
# last failure, so the count is "failures, each within the window of the previous one".
modparam("htable", "htable", @@AUTHFAIL_TABLE@@)
# The DIDs answered (ivr/edge/dids.py): data, so a new DID needs no restart (the application
# rewrites the table and runs `kamcmd htable.reload dids`).
modparam("htable", "db_url", @@DB_URL@@)
modparam("htable", "htable", "dids=>size=6;dbtable=dids;")

# Credentials: HA1 only, in db_text files the application rewrites atomically; db_mode 1
# re-reads a table when its file changes, so new agents register without a reload.
modparam("db_text", "db_mode", 1)
modparam("auth_db", "db_url", @@DB_URL@@)
modparam("auth_db", "calculate_ha1", 0)
modparam("auth_db", "password_column", "ha1")
modparam("auth_db", "use_domain", 0)
modparam("auth_db", "load_credentials", "")
# Registrations: usrloc write-through (db_mode 1) over db_redis, in the center's Redis: every
# REGISTER is saved there as well as in memory, and an edge loads them all when it starts, so
# a restarted edge routes to softphones that registered before, without a new REGISTER.
modparam("db_redis", "schema_path", @@DB_REDIS_SCHEMAS@@)
modparam("db_redis", "keys", "version=entry:table_name")
modparam("db_redis", "keys", "location=entry:ruid&usrdom:username,domain&timer:partition,keepalive")
modparam("db_redis", "verbosity", 0)
modparam("usrloc", "db_url", @@USRLOC_DB_URL@@)
modparam("usrloc", "db_mode", 1)
modparam("usrloc", "use_domain", 0)
modparam("registrar", "max_expires", @@MAX_EXPIRES@@)
modparam("registrar", "default_expires", 600)
modparam("registrar", "min_expires", 30)
# A phone registered over TLS is reached over its own connection (fix_nated_register).
modparam("nathelper", "received_avp", "$avp(RECEIVED)")
modparam("registrar", "received_avp", "$avp(RECEIVED)")

# Slots: call-load dispatching (algorithm 10, duid + maxload=1 per slot), OPTIONS probes.
modparam("dispatcher", "list_file", @@DS_LIST@@)
# flags 2: keep the other selected slots for failover (ds_next_dst).
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "ds_ping_method", "OPTIONS")
modparam("dispatcher", "ds_ping_from", @@PING_FROM@@)
modparam("dispatcher", "ds_ping_interval", @@PING_INTERVAL@@)
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_ping_reply_codes", "class=2")
modparam("dispatcher", "ds_hash_size", 10)
modparam("dispatcher", "ds_hash_expire", @@HASH_EXPIRE@@)
modparam("dispatcher", "ds_hash_initexpire", @@HASH_INITEXPIRE@@)
modparam("dispatcher", "ds_hash_check_interval", 10)
modparam("dispatcher", "reload_delta", @@RELOAD_DELTA@@)
modparam("dispatcher", "ds_timer_mode", 1)

####### routing
request_route {
	route(FLOOD);
	route(REQINIT);
	route(SCREEN);

	if (is_method("CANCEL")) {
		if (t_check_trans()) {
			t_relay();
		}
		exit;
	}

	route(WITHINDLG);

	# Initial requests only from here on.
	if (t_precheck_trans()) {
		t_check_trans();
		exit;
	}
	t_check_trans();

	# Preloaded Route headers are ignored: the edge alone decides where a call goes.
	remove_hf("Route");

	if (is_method("OPTIONS")) {
		sl_send_reply("200", "OK");
		exit;
	}
	if (is_method("REGISTER")) {
		route(REGISTRAR);
		exit;
	}
	if (!is_method("INVITE")) {
		if (!is_method("ACK")) {
			xlog("L_NOTICE", "edge: $rm from $si:$sp refused (method not allowed)\n");
			sl_send_reply("405", "Method Not Allowed");
		}
		exit;
	}

	record_route();
	if (ds_is_from_list("@@SLOT_SET@@", "2")) {
		route(FROM_SLOT);
		exit;
	}
	route(FROM_OUTSIDE);
	exit;
}

# Ban an address that floods; slots and trunks are exempt (a trunk at 10 calls/s would
# otherwise trip the default threshold).
route[FLOOD] {
@@TRUSTED_CHECK@@
	if ($var(trusted) == 1) {
		return;
	}
	if ($sht(ban=>$si) != $null) {
		exit;
	}
	$var(pike) = pike_check_req();
	if ($var(pike) == -2) {
		# -2: a new flood. Ban only then: after an admin's unban pike still reports the old
		# flood (-1) until its next sampling window, which must not re-ban the address.
		$sht(ban=>$si) = 1;
		xlog("L_ALERT", "edge: flood from $si:$sp ($rm), address banned for @@BAN_SECONDS@@ s\n");
		# One record when the ban starts; what the banned address sends next is dropped
		# unrecorded (a record per flooding packet would carry the flood into Redis).
		$var(refused) = "flood_banned";
		route(CALL_REFUSED);
		exit;
	}
	if ($var(pike) < 0) {
		exit;
	}
}

route[REQINIT] {
	if (!mf_process_maxfwd_header("10")) {
		xlog("L_NOTICE", "edge: $rm from $si:$sp refused (Max-Forwards)\n");
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if (!sanity_check("17895", "7")) {
		xlog("L_WARN", "edge: malformed SIP request from $si:$sp dropped\n");
		exit;
	}
}

route[RELAY] {
	if (!t_relay()) {
		sl_reply_error();
	}
	exit;
}

# Requests inside a dialog follow the Record-Route set. From outside the slot set they may
# only go towards a slot: a forged Route set must never reach a trunk or a softphone.
route[WITHINDLG] {
	if (!has_totag()) {
		return;
	}
	# From outside the slot set only call control passes: a REFER (or NOTIFY, SUBSCRIBE,
	# MESSAGE, PUBLISH) to a slot would make it dial out at the center's cost.
	if (!ds_is_from_list("@@SLOT_SET@@", "2")
			&& !is_method("ACK|BYE|CANCEL|INVITE|UPDATE|PRACK|INFO")) {
		xlog("L_NOTICE", "edge: in-dialog $rm from $si:$sp refused (only call control passes)\n");
		sl_send_reply("403", "Forbidden");
		exit;
	}
	if (loose_route()) {
		if (!ds_is_from_list("@@SLOT_SET@@", "2")
				&& !ds_is_from_list("@@SLOT_SET@@", "2", "$nh(u)")) {
			xlog("L_WARN", "edge: in-dialog $rm from $si:$sp towards $nh(u) refused\n");
			sl_send_reply("403", "Forbidden");
			exit;
		}
		if (is_method("BYE") && check_route_param("slot=1")) {
			# Frees the slot in the call-load table (matched by Call-ID).
			ds_load_update();
		}
		route(RELAY);
	}
	if (is_method("ACK")) {
		if (t_check_trans()) {
			route(RELAY);
		}
		exit;
	}
	xlog("L_NOTICE", "edge: in-dialog $rm from $si:$sp matches no route set, refused\n");
	sl_send_reply("404", "Not here");
	exit;
}

route[REGISTRAR] {
	if (ds_is_from_list("@@SLOT_SET@@", "2")) {
		xlog("L_NOTICE", "edge: REGISTER from slot $si:$sp refused\n");
		sl_send_reply("403", "Forbidden");
		exit;
	}
	$var(rc) = auth_check(@@REALM@@, "subscriber", "0");
	if ($var(rc) == -2 || $var(rc) == -3) {
		# Wrong password and unknown user look the same to the caller.
		# $shtinc does not create a missing entry: the first failure sets it.
		if ($sht(authfail=>$si) == $null) {
			$sht(authfail=>$si) = 1;
		} else {
			$sht(authfail=>$si) = $sht(authfail=>$si) + 1;
		}
		$var(fails) = $sht(authfail=>$si);
		xlog("L_NOTICE",
			"edge: REGISTER for $tU from $si:$sp refused (auth $var(rc), failure $var(fails))\n");
		if ($var(fails) >= @@AUTH_FAIL_LIMIT@@ && $var(trusted) == 0) {
			$sht(ban=>$si) = 1;
			xlog("L_ALERT",
				"edge: password guessing from $si:$sp, address banned for @@BAN_SECONDS@@ s\n");
		}
		sl_send_reply("403", "Forbidden");
		exit;
	}
	if ($var(rc) < 0) {
		auth_challenge(@@REALM@@, "1");
		exit;
	}
	# The digest user must be the extension being registered (1001 cannot register as 1002).
	if ($au != $tU) {
		xlog("L_NOTICE", "edge: REGISTER for $tU by $au from $si:$sp refused (not their own)\n");
		sl_send_reply("403", "Forbidden");
		exit;
	}
	consume_credentials();
	route(CONTACT_CHECK);
	if ($proto == "tls") {
		# A TLS phone is reached over the connection it registered on (it need not listen for
		# TLS itself): the connection's address is kept as the contact's `received`.
		fix_nated_register();
	}
	if (!save("location")) {
		sl_reply_error();
		exit;
	}
	route(KEEP_CONTACTS);
	exit;
}

# usrloc keeps registrations in memory only. A copy in Redis (field = extension, value = one
# "<absolute expiry> <contact>" line per contact) lets a restarted edge put them back
# (Edge.restore_contacts, called by the engine when it restarts a dead edge): after a kill -9
# the agents stay reachable instead of waiting for their softphones to register again.
route[KEEP_CONTACTS] {
	$var(kept) = "";
	if (reg_fetch_contacts("location", "sip:$tU@$td", "kept")) {
		$var(i) = 0;
		while ($var(i) < $(ulc(kept=>count))) {
			$var(kept) = $var(kept) + $(ulc(kept=>expires)[$var(i)]) + " "
				+ $(ulc(kept=>addr)[$var(i)]) + "\n";
			$var(i) = $var(i) + 1;
		}
		reg_free_contacts("kept");
	}
	$var(copied) = 1;
	if ($var(kept) == "") {
		if (!redis_cmd("cc", "HDEL @@CONTACTS_KEY@@ %s", "$tU", "kept_reply")) $var(copied) = 0;
	} else if (!redis_cmd("cc", "HSET @@CONTACTS_KEY@@ %s %s", "$tU", "$var(kept)", "kept_reply")) {
		$var(copied) = 0;
	}
	if ($var(copied) == 0) {
		xlog("L_WARN", "edge: registration of $tU not copied to Redis: Redis did not answer\n");
	}
}

# A softphone's Contact must be its own address: never the edge, a slot or a trunk (the edge
# would otherwise deliver agent calls, i.e. outside calls, to them).
route[CONTACT_CHECK] {
	if ($ct == "*") {
		return;
	}
	if ($hdrc(Contact) != 1 || $ct =~ ",") {
		xlog("L_NOTICE", "edge: REGISTER for $tU from $si:$sp refused: more than one Contact\n");
		sl_send_reply("403", "One Contact per registration");
		exit;
	}
	$var(chost) = $(ct{nameaddr.uri}{uri.host});
	$var(bad) = 0;
	if ($var(chost) == $null || $var(chost) == "") $var(bad) = 1;
	if (ds_is_from_list("@@SLOT_SET@@", "3", "sip:$var(chost)")) $var(bad) = 1;
@@CONTACT_CHECK@@
	if ($var(bad) == 1) {
		xlog("L_NOTICE",
			"edge: REGISTER for $tU from $si:$sp refused: Contact $ct is an edge/slot/trunk\n");
		sl_send_reply("403", "Contact not allowed");
		exit;
	}
}

# What reaches the routing logic from outside the slot set: scanners are dropped unanswered,
# bodies must pass the body policy (pjsua2 2.15.1 must never parse hostile SDP).
route[SCREEN] {
	if (ds_is_from_list("@@SLOT_SET@@", "2")) {
		return;
	}
@@SCANNER_CHECK@@
	route(BODY);
}

route[REFUSE] {
	xlog("L_NOTICE", "edge: $rm from $si:$sp refused: $var(why)\n");
	$var(refused) = "bad_request";
	route(CALL_REFUSED);
	if (!is_method("ACK")) {
		sl_send_reply("$var(code)", "$var(reason)");
	}
	exit;
}

# Body policy: one Content-Type, application/sdp on INVITE/ACK/UPDATE/PRACK and
# application/dtmf-relay (or dtmf) on INFO, nothing else (multipart included), no
# Content-Encoding, at most max_body_bytes, no NUL byte; SDP starting with v=0, ptime and
# maxptime 1..999 ms, payload types 0..127, bounded line count and line length.
route[BODY] {
	if ($bs == 0 && $hdrc(Content-Type) == 0) {
		return;
	}
	$var(code) = 415;
	$var(reason) = "Unsupported Media Type";
	if ($bs > @@MAX_BODY@@) {
		$var(code) = 413;
		$var(reason) = "Request Entity Too Large";
		$var(why) = "body of $bs bytes";
		route(REFUSE);
	}
	if ($hdrc(Content-Type) != 1 || $hdrc(Content-Encoding) != 0) {
		$var(why) = "Content-Type/Content-Encoding headers";
		route(REFUSE);
	}
	$var(ctype) = $(cT{s.tolower});
	if (is_method("INFO")) {
		if (!($var(ctype) =~ "^application/(dtmf-relay|dtmf)[ \t]*(;.*)?$")) {
			$var(why) = "Content-Type $cT on INFO";
			route(REFUSE);
		}
	} else if (is_method("INVITE|ACK|UPDATE|PRACK")) {
		if (!($var(ctype) =~ "^application/sdp[ \t]*(;.*)?$")) {
			$var(why) = "Content-Type $cT";
			route(REFUSE);
		}
	} else {
		$var(why) = "a body on $rm";
		route(REFUSE);
	}
	if ($bs == 0) {
		return;
	}
	$var(code) = 400;
	$var(reason) = "Bad Request";
	# Regular expressions stop at a NUL byte: look for it in the hex-encoded body instead.
	if ($(rb{s.encode.hexa}) =~ "^(..)*00") {
		$var(why) = "NUL byte in the body";
		route(REFUSE);
	}
	if (!is_method("INFO")) {
		route(SDP);
	}
}

route[SDP] {
	$var(code) = 488;
	$var(reason) = "Not Acceptable Here";
	$var(sdp) = "\n" + $rb + "\n";
	if (!($var(sdp) =~ "^\nv=0\r?\n")) {
		$var(why) = "SDP not starting with v=0";
		route(REFUSE);
	}
	if ($var(sdp) =~ "^\n([^\n]*\n){@@MAX_LINES@@}[^\r\n]") {
		$var(why) = "SDP longer than @@MAX_LINES@@ lines";
		route(REFUSE);
	}
	if ($var(sdp) =~ "[^\r\n]{@@MAX_LINE_PLUS_ONE@@}") {
		$var(why) = "SDP line longer than @@MAX_LINE@@ characters";
		route(REFUSE);
	}
	# ptime/maxptime: 1 to 3 digits, nothing else (2.15.1 overflows on 4294967295).
	if ($var(sdp) =~ "@@BAD_PTIME@@") {
		$var(why) = "SDP ptime/maxptime out of range";
		route(REFUSE);
	}
	# RTP payload types are 7 bits: 0..127 in m= lines, rtpmap and fmtp.
	if ($var(sdp) =~ "@@BAD_PT_MEDIA@@" || $var(sdp) =~ "@@BAD_PT_ATTRIBUTE@@") {
		$var(why) = "SDP payload type out of range";
		route(REFUSE);
	}
}

# New calls from callers and trunks: configured DIDs only, each to a free slot.
route[FROM_OUTSIDE] {
@@DID_CHECK@@
	if ($var(did) == 0) {
		xlog("L_NOTICE", "edge: INVITE from $si:$sp to unknown number $rU refused\n");
		$var(refused) = "unknown_did";
		route(CALL_REFUSED);
		sl_send_reply("404", "Not Found");
		exit;
	}
	route(TO_SLOT);
}

route[TO_SLOT] {
	if (!ds_select_dst("@@SLOT_SET@@", "10", "@@MAX_ATTEMPTS@@")) {
		xlog("L_NOTICE", "edge: no free slot for call $ci from $si:$sp\n");
		$var(refused) = "no_slot";
		route(CALL_REFUSED);
		sl_send_reply("486", "Busy Here");
		exit;
	}
	# Marks the dialog as a slot call: its BYE releases the slot's call load.
	add_rr_param(";slot=1");
	t_on_reply("SLOT_REPLY");
	t_on_failure("SLOT_FAILURE");
	route(RELAY);
}

onreply_route[SLOT_REPLY] {
	if (status =~ "^2[0-9][0-9]$") {
		ds_load_update();
	}
}

failure_route[SLOT_FAILURE] {
	if (t_is_canceled()) {
		ds_load_unset();
		exit;
	}
	if (t_branch_timeout() && !t_branch_replied()) {
		# No answer at all within fr_timer: take the slot out until a probe succeeds.
		xlog("L_WARN", "edge: slot $du did not answer call $ci, taken out of rotation\n");
		ds_mark_dst("ip");
	}
	if (t_branch_timeout() || t_check_status("^(486|480|408|500|502|503|504)$")) {
		# ds_next_dst moves this call's load entry to the next slot. When there is no next
		# slot it drops the current one from the list first, after which ds_load_unset can
		# no longer find the load to release: so look ahead, and release before giving up.
		if ($xavp(_dsdst_[1]=>uri) != $null && ds_next_dst()) {
			xlog("L_INFO", "edge: call $ci failing over to slot $du\n");
			t_on_reply("SLOT_REPLY");
			t_on_failure("SLOT_FAILURE");
			t_relay();
			exit;
		}
		ds_load_unset();
		$var(refused) = "no_slot";
		route(CALL_REFUSED);
		t_reply("486", "Busy Here");
		exit;
	}
	ds_load_unset();
}

# A new call turned away before any slot took it: one call_refused event on the events stream
# (docs/metrics.md "refused"), so the caller is counted like any other. Only numbers are
# copied from the request (a hostile From cannot inject into the JSON); the call id is a hash.
route[CALL_REFUSED] {
	if (!is_method("INVITE") || has_totag()) {
		return;
	}
	$var(caller) = "";
	if ($fU =~ "^[+]?[0-9]{1,32}$") {
		$var(caller) = $fU;
	}
	$var(callee) = "";
	if ($rU =~ "^[+]?[0-9]{1,32}$") {
		$var(callee) = $rU;
	}
	$var(data) = "{\"caller\":\"" + $var(caller) + "\",\"did\":\"" + $var(callee)
		+ "\",\"reason\":\"" + $var(refused) + "\",\"source\":\"" + $si + "\"}";
	$var(refused_id) = "refused-" + $(ci{s.md5});
	$var(refused_at) = $utimef(%Y-%m-%dT%H:%M:%S+00:00);
	# (the engine's own XADDs trim the stream to its usual length)
	if (!redis_cmd("cc",
			"XADD @@EVENTS_STREAM@@ * type call_refused node edge call_id %s at %s data %s",
			"$var(refused_id)", "$var(refused_at)", "$var(data)", "refused")) {
		xlog("L_WARN", "edge: refused call $ci from $si not reported: Redis did not answer\n");
	}
}

# Probe results that change a slot's state (the request URI is the slot's address).
event_route[dispatcher:dst-down] {
	xlog("L_NOTICE", "edge: slot $ru down (no answer to OPTIONS)\n");
}

event_route[dispatcher:dst-up] {
	xlog("L_NOTICE", "edge: slot $ru up\n");
}

# Calls placed by a slot: an agent's softphone, else an outside number over a trunk.
route[FROM_SLOT] {
	if (lookup("location")) {
		t_on_failure("AGENT_FAILURE");
		route(RELAY);
	}
	if (is_subscriber("$ru", "subscriber", "2")) {
		sl_send_reply("480", "Temporarily Unavailable");
		exit;
	}
	if ($rU =~ "^\+?[0-9]{3,20}$") {
		# A number: only those telephony.toml's dial plan allows reach a trunk.
@@DIAL_PLAN_CHECK@@
		if ($var(dialable) == 1) {
			route(TO_TRUNK);
		}
		xlog("L_NOTICE", "edge: call $ci from slot $si:$sp to $rU refused: not in the dial plan\n");
		$var(refused) = "dial_plan";
		route(CALL_REFUSED);
		sl_send_reply("403", "Number not allowed by the dial plan");
		exit;
	}
	xlog("L_NOTICE", "edge: call $ci from slot $si:$sp to $rU refused: unknown\n");
	sl_send_reply("404", "Not Found");
	exit;
}

failure_route[AGENT_FAILURE] {
	if (t_branch_timeout() && !t_branch_replied()) {
		t_reply("480", "Temporarily Unavailable");
	}
}

route[TO_TRUNK] {
@@TRUNK_ROUTE@@}
"""


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
    tls_listen, tls_module = _render_tls(settings, paths, host)
    values = {
        "TLS_LISTEN": tls_listen,
        "TLS_MODULE": tls_module,
        "LOG_LEVEL": str(tuning.log_level),
        "CHILDREN": str(tuning.children),
        "HOST": host,
        "PORT": str(sip.edge_port),
        "DOMAIN": domain,
        "CTL": _quote(f"unix:{paths.ctl_socket}"),
        "FR_TIMER": str(tuning.fr_timer_ms),
        "FR_INV_TIMER": str(tuning.fr_inv_timer_ms),
        "PIKE_WINDOW": str(tuning.pike_window_seconds),
        "PIKE_MAX": str(tuning.pike_max_requests),
        "BAN_TABLE": _quote(f"ban=>size=8;autoexpire={tuning.ban_seconds};"),
        "BAN_SECONDS": str(tuning.ban_seconds),
        "DB_URL": _quote(f"text://{paths.db_dir}"),
        "MAX_EXPIRES": str(tuning.register_max_expires),
        "DS_LIST": _quote(str(paths.dispatcher_list)),
        "PING_FROM": _quote(f"sip:edge@{host}:{sip.edge_port}"),
        "PING_INTERVAL": str(tuning.ping_interval_seconds),
        # A slot's load entry outlives the longest call the slots allow, then expires.
        "HASH_EXPIRE": str(sip.max_call_seconds + 60),
        "HASH_INITEXPIRE": str(max(tuning.fr_inv_timer_ms // 1000 + 30, 60)),
        "RELOAD_DELTA": str(tuning.reload_delta_seconds),
        "SLOT_SET": str(SLOT_SET),
        "MAX_ATTEMPTS": str(tuning.max_slot_attempts),
        "REALM": _quote(domain),
        "TRUSTED_CHECK": _render_trusted_check(trusted_addresses(settings, center)).rstrip("\n"),
        "DID_CHECK": _render_did_check(settings, center).rstrip("\n"),
        "SCANNER_CHECK": _render_scanner_check(tuning.scanner_user_agents).rstrip("\n"),
        "CONTACT_CHECK": _render_contact_check(settings, center),
        "DIAL_PLAN_CHECK": _render_dial_plan_check(center),
        "REDIS_SERVER": _quote(_redis_server(settings.redis_url)),
        "DB_REDIS_SCHEMAS": _quote(str(DB_REDIS_SCHEMAS)),
        "USRLOC_DB_URL": _quote(usrloc_db_url(settings.redis_url)),
        "EVENTS_STREAM": f"{settings.redis_prefix}:events",
        "CONTACTS_KEY": contacts_key(settings),
        "PV_BUFFER": str(max(8192, 2 * tuning.max_body_bytes + 1024)),
        "AUTHFAIL_TABLE": _quote(f"authfail=>size=8;autoexpire={tuning.auth_fail_window_seconds};"),
        "AUTH_FAIL_LIMIT": str(tuning.auth_fail_limit),
        "MAX_BODY": str(tuning.max_body_bytes),
        **SDP_BAD_PATTERNS,
        "MAX_LINES": str(tuning.max_sdp_lines),
        "MAX_LINE": str(tuning.max_sdp_line_length),
        "MAX_LINE_PLUS_ONE": str(tuning.max_sdp_line_length + 1),
        "TRUNK_ROUTE": _render_trunk_route(center),
    }
    text = _TEMPLATE
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    leftover = re.search(r"@@[A-Z_]+@@", text)
    if leftover:  # pragma: no cover - a template/value mismatch is a programming error
        raise AssertionError(f"unfilled placeholder {leftover.group(0)} in the edge template")
    return text


def contacts_key(settings: Settings) -> str:
    """The Redis hash where the edge keeps a copy of its registrations (route[KEEP_CONTACTS])."""
    return f"{settings.redis_prefix}:edge:{settings.node_id}:contacts"


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
