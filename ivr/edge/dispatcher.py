"""The dispatcher set of slots: slot addresses, their ids and load limits, the list file."""

from __future__ import annotations

import re

from ivr.edge.cfgtext import EdgeConfigError

# The dispatcher set holding the engine's slots.
SLOT_SET = 1


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
        "# Rendered by ivr/edge/dispatcher.py: the slots (set, uri, flags, priority, attrs).",
        "# Changed at run time with dispatcher.add/remove, which keep call-load counts;",
        "# dispatcher.reload would wipe them and is never used.",
    ]
    for uri in dict.fromkeys(normalize_slot_uri(u) for u in slot_uris):
        lines.append(f"{SLOT_SET} {uri} 0 0 {slot_attrs(uri)}")
    return "\n".join(lines) + "\n"
