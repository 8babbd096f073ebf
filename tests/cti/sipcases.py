"""Setup shared by the end-to-end SIP tests of routing (``test_e2e_sip.py``,
``test_e2e_sip_cases.py``): the real engine behind its Kamailio edge, the router as it runs in
production on a clock that reads 10:00 in Shanghai, SIPp softphones registered at the edge,
SIPp callers and a SIPp customer behind the outbound trunk.

Each test takes its own :class:`Plan` (ports and loopback addresses), so these tests can run
beside the engine's and edge's own SIP tests (ports 5060, 16xxx, 17xxx).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from callcenter.context import AppContext
from callcenter.testkit import sipp
from config.loader import load_config
from cti import services
from cti.routing import Routing
from tests.cti.conftest import ZONE
from tests.engine.conftest import EngineProcess, make_test_config


@dataclass(frozen=True)
class Plan:
    """One test's addresses. SIP ports ``base`` .. ``base + 99``: the edge, the slots from
    ``base + 10``, softphones from ``base + 20`` (two ports each: calls, REGISTER), callers from
    ``base + 60``, the trunk's customer at ``base + 90``. The slots' RTP from ``rtp_base``
    (16 per line); SIPp media from ``media_base`` (10 per peer)."""

    base: int
    rtp_base: int
    media_base: int
    host: str = "127.0.0.5"  # the edge and the slots
    agents_ip: str = "127.0.0.6"
    callers_ip: str = "127.0.0.7"
    trunk_ip: str = "127.0.0.8"

    @property
    def edge(self) -> str:
        return f"{self.host}:{self.base}"

    @property
    def slot_base_port(self) -> int:
        return self.base + 10

    @property
    def trunk_port(self) -> int:
        return self.base + 90

    def softphone_port(self, n: int) -> int:
        return self.base + 20 + 2 * n

    def caller_port(self, n: int) -> int:
        return self.base + 60 + n

    def media(self, n: int) -> int:
        return self.media_base + 10 * n


def register(
    tmp_path: Path,
    edge: str,
    user: str,
    password: str,
    *,
    ip: str,
    contact_port: int,
    local_port: int,
) -> None:
    """Register ``user`` at the edge (digest auth) with a Contact where a SIPp UAS listens."""
    result = sipp.register(tmp_path, edge, f"{ip}:{local_port}", user,
                           f"sip:{user}@{ip}:{contact_port}", password=password)  # fmt: skip
    assert result.ok(), result.failure()


def morning_routing(ctx: AppContext) -> Routing:
    """Routing in real time (the engine's timers are real), with the wall clock read as 10:00
    in Shanghai so that the day and middle shifts are on whatever the hour of the run; made
    this process's routing handle (the API and the router use it)."""
    now = time.time()
    offset = datetime.fromtimestamp(now, ZONE).replace(hour=10, minute=0).timestamp() - now
    routing = Routing(ctx.redis, ctx.keys, ctx.config, clock=lambda: time.time() + offset)
    services.use_routing(ctx, routing)
    return routing


def start_behind_edge(
    start_engine: Callable[..., EngineProcess],
    ctx: AppContext,
    *,
    host: str,
    edge_port: int,
    slot_base_port: int,
    rtp_base_port: int,
    lines: int = 3,
    spares: int = 2,
    config_dir: Path | None = None,
) -> EngineProcess:
    """The engine with its edge on ``host:edge_port``; routing (``ctx``) dials agents there."""
    engine = start_engine(
        lines=lines,
        spares=spares,
        edge=True,
        config_dir=config_dir,
        edge_host=host,
        edge_port=edge_port,
        slot_host=host,
        slot_base_port=slot_base_port,
        rtp_base_port=rtp_base_port,
    )
    ctx.settings.sip.edge_host = host
    ctx.settings.sip.edge_port = edge_port
    return engine


def start_plan(
    start_engine: Callable[..., EngineProcess],
    ctx: AppContext,
    plan: Plan,
    *,
    lines: int = 3,
    spares: int = 2,
) -> EngineProcess:
    """The engine on ``plan``'s addresses, with the same config directory as routing."""
    return start_behind_edge(
        start_engine,
        ctx,
        host=plan.host,
        edge_port=plan.base,
        slot_base_port=plan.slot_base_port,
        rtp_base_port=plan.rtp_base,
        lines=lines,
        spares=spares,
        config_dir=ctx.settings.config_dir,
    )


def e2e_config(target: Path, plan: Plan, queues_toml: str | None = None) -> Path:
    """The engine tests' config (short menu timeouts, a carrier trunk) with the trunk on
    ``plan``'s address and, when given, another queues.toml. Routing and the engine both
    read it, so both see the same ring timeouts, overflows and no-agents modes."""
    make_test_config(target, plan.trunk_ip, plan.trunk_port)
    if queues_toml is not None:
        (target / "queues.toml").write_text(queues_toml, encoding="utf-8")
    load_config(target)  # still valid
    return target
