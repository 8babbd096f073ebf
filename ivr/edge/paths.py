"""Where the edge keeps its files (everything under ``<state_dir>/kamailio/``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config.settings import Settings


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
