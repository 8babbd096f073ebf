"""Removing an agent's registration from the running edge (a disabled agent, a new SIP password).

The registrar keeps contacts in the center's Redis (``usrloc`` over ``db_redis``, docs/edge.md),
so a phone registered before its agent was disabled would keep receiving calls until its
registration expired. ``kamcmd ul.rm location <aor>`` drops them now, from Redis too (so from
every edge of the center); the phone's next REGISTER is then checked against the rewritten
subscriber table and refused. Any process on the edge's machine may do this: it talks to the
ctl socket, not to the ``Edge`` object the engine owns.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from config.settings import Settings

log = logging.getLogger(__name__)


def _kamcmd(settings: Settings) -> str:
    binary = shutil.which(settings.sip.kamailio_binary) or settings.sip.kamailio_binary
    sibling = Path(binary).with_name("kamcmd")
    if sibling.exists():
        return str(sibling)
    return shutil.which("kamcmd") or "kamcmd"


def drop_registration(settings: Settings, aor: str, timeout: float = 5.0) -> bool:
    """Remove every contact registered for ``aor`` (the extension; ``use_domain`` is off).

    Returns True when the edge answered (whether or not the AoR had contacts), False when no
    edge runs on this machine (no ctl socket). Raises RuntimeError when the edge refused.
    """
    socket = Path(settings.sip.kamailio_ctl_socket)
    if not socket.exists():
        return False
    # "s:" keeps kamcmd from sending an all-digit extension as an integer, which ul.rm
    # rejects as a missing parameter.
    command = [_kamcmd(settings), "-s", f"unix:{socket}", "ul.rm", "location", f"s:{aor}"]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"kamcmd ul.rm location {aor}: no answer within {timeout} s") from None
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:  # a socket left behind by an edge that is gone
        log.warning("kamcmd ul.rm location %s: %s", aor, output or result.returncode)
        return False
    # kamcmd exits 0 even when the command failed; an AoR without contacts is "404 - AOR not
    # found", which is what we wanted anyway.
    if output.startswith("error:") and "404" not in output:
        raise RuntimeError(f"kamcmd ul.rm location {aor}: {output}")
    return True
