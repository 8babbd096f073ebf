"""A baresip softphone for tests: a real SIP user agent that registers with digest auth
(UDP, TCP or TLS), answers, and plays a WAV file or silence. No sound device (aubridge)."""

from __future__ import annotations

import subprocess
from pathlib import Path

CONFIG = """\
poll_method epoll
sip_listen {agent}:{sip_port}
net_interface {agent}
audio_player aubridge,nil
audio_source {source}
audio_alert aubridge,nil
module_path /usr/lib/baresip/modules
module g711.so
{modules}module aubridge.so
module_app account.so
rtp_ports {rtp_ports}
"""


def start_baresip(
    workdir: Path,
    agent: str,
    account: str,
    *,
    tone: Path | None = None,
    cafile: Path | None = None,
    sip_port: int = 15211,
    rtp_ports: str = "15220-15239",
) -> tuple[subprocess.Popen[bytes], Path]:
    """baresip on ``agent:sip_port`` with one account line (``<sip:1001@host:port>;
    auth_pass=...;answermode=auto``), sending ``tone`` (a WAV) on calls or silence; ``cafile``:
    the certificate a TLS edge is checked against. Returns the process and its log."""
    directory = workdir / "baresip"
    directory.mkdir(parents=True, exist_ok=True)
    config = CONFIG.format(
        agent=agent,
        sip_port=sip_port,
        source=f"aufile,{tone}" if tone else "aubridge,nil",
        modules="module aufile.so\n" if tone else "",
        rtp_ports=rtp_ports,
    )
    if cafile is not None:
        config += f"sip_cafile {cafile}\n"
    (directory / "config").write_text(config)
    (directory / "accounts").write_text(account + "\n")
    log = workdir / "baresip.log"
    with log.open("wb") as out:
        process = subprocess.Popen(["baresip", "-f", str(directory)], stdout=out,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    return process, log
