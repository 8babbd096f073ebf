"""The DIDs the edge answers, as data: an ``htable`` loaded from a db_text table.

``kamailio.cfg`` looks a called number up in the ``dids`` htable (``$sht(dids=>$rU)``)
instead of naming every DID in the script, so a ``telephony`` version that adds or removes a
DID reaches a running edge without a restart: the table file is rewritten (atomically) and
``kamcmd htable.reload dids`` re-reads it; calls in progress are not touched (the table is
read only for a new INVITE from outside). Both forms of a number are keys: trunks send a DID
with or without its leading ``+``.
"""

from __future__ import annotations

from pathlib import Path

from config.loader import CenterConfig
from config.settings import Settings
from ivr.edge.subscribers import write_table

DIDS_TABLE = "dids"
# htable's database columns (Kamailio's htable.sql): key_type 0 = a plain key, value_type
# 1 = an integer value.
DIDS_HEADER = "key_name(str) key_type(int) value_type(int) key_value(str) expires(int)"


def did_keys(center: CenterConfig) -> list[str]:
    """Every form of every configured DID the edge accepts as a called number."""
    keys: list[str] = []
    for did in center.telephony.dids:
        number = did.number.lstrip("+")
        keys += [number, f"+{number}"]
    return list(dict.fromkeys(keys))


def render_dids_table(center: CenterConfig) -> str:
    lines = [DIDS_HEADER]
    lines += [f"{key}:0:1:1:0" for key in did_keys(center)]  # digits and "+": nothing to escape
    return "\n".join(lines) + "\n"


def write_dids_table(db_dir: Path, center: CenterConfig) -> bool:
    """Write the table if it differs; whether it changed."""
    return write_table(db_dir / DIDS_TABLE, render_dids_table(center))


def render_did_check(settings: Settings) -> str:
    """Sets $var(did) for $rU; with ``dids_from_trunks_only`` refuses a DID called from
    anywhere but a trunk address (the ``rules`` htable's ``peer.<address>`` = 1), unless no
    trunk address is configured at all."""
    lines = ["\t$var(did) = 0;", "\tif ($sht(dids=>$rU) != $null) $var(did) = 1;"]
    only_trunks = settings.sip.edge.dids_from_trunks_only
    if only_trunks is None:
        only_trunks = settings.environment == "production"
    if only_trunks:
        # A DID is the carrier's number: a call to it from anywhere else bypasses the carrier.
        lines += [
            "\tif ($var(did) == 1 && $sht(rules=>trunk_addresses) > 0",
            "\t\t\t&& $sht(rules=>peer.$si) != 1) {",
            '\t\txlog("L_NOTICE", "edge: INVITE from $si:$sp to DID $rU refused: not a trunk\\n");',
            '\t\t$var(refused) = "not_from_trunk";',
            "\t\troute(CALL_REFUSED);",
            '\t\tsl_send_reply("403", "Forbidden");',
            "\t\texit;",
            "\t}",
        ]
    return "\n".join(lines) + "\n"
