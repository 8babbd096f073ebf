"""Fixtures for the SIP edge: a real Kamailio, SIPp peers on loopback.

Addresses (kept apart from the engine's tests, which use 5060 / 16000-16999 / 21000+):
  edge            127.0.0.1:15060 (UDP and TCP)
  slot stand-ins  127.0.0.1:15101.. (SIPp UAS answering the edge's OPTIONS probes)
  flooder         127.0.0.2         callers 127.0.0.3   agents 127.0.0.4   trunk 127.0.0.7
SIPp peers, their scenarios and control ports come from ``callcenter.testkit``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from callcenter.auth import sip_ha1
from callcenter.testkit import scenarios
from callcenter.testkit import sipp as sipp_kit
from callcenter.testkit.sipp import SippResult
from config.loader import CenterConfig, load_config
from config.settings import EdgeTuning, Settings, SipSettings
from ivr.edge.paths import edge_paths
from ivr.edge.process import Edge
from ivr.edge.subscribers import Subscriber, write_subscribers
from tests.conftest import TEST_REDIS_URL

EDGE_HOST = "127.0.0.1"
EDGE_PORT = 15060
EDGE = (EDGE_HOST, EDGE_PORT)  # where RawSip sends
REALM = "callcenter.local"
DID = "4008001234"


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll until predicate() is truthy; fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="session", autouse=True)
def _require_sip_tools() -> None:
    missing = [
        tool for tool in ("kamailio", "kamcmd", "sipp", "baresip", "sox") if not shutil.which(tool)
    ]
    if not Path("/usr/share/sipvicious/sipvicious").is_dir():
        missing.append("sipvicious")
    if missing:
        pytest.fail(f"SIP edge tests need {', '.join(missing)} (bash scripts/dev.sh setup)")


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Short path: the ctl socket path must fit in sun_path (108 bytes).
    directory = Path(tempfile.mkdtemp(prefix="edge-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def make_settings(state_dir: Path, **tuning: int) -> Settings:
    defaults: dict[str, int] = {
        "fr_timer_ms": 1000,
        "ping_interval_seconds": 1,
        "reload_delta_seconds": 1,
        "ban_seconds": 60,
        "pike_window_seconds": 2,
        "pike_max_requests": 16,
        "children": 2,
        "log_level": 2,
    }
    defaults.update(tuning)
    return Settings(
        environment="test",
        state_dir=state_dir,
        redis_url=TEST_REDIS_URL,  # where the edge reports refused calls
        sip=SipSettings(
            edge_host=EDGE_HOST,
            edge_port=EDGE_PORT,
            slot_host=EDGE_HOST,
            edge=EdgeTuning.model_validate(defaults),
        ),
    )


@pytest.fixture
def edge_settings(state_dir: Path) -> Settings:
    return make_settings(state_dir)


@pytest.fixture
def center() -> CenterConfig:
    return load_config(Settings(environment="test").config_dir)


def agent_subscribers(*extensions: str) -> list[Subscriber]:
    return [Subscriber(ext, REALM, sip_ha1(ext, REALM, f"pw{ext}")) for ext in extensions]


@dataclass
class EdgeFactory:
    settings: Settings
    center: CenterConfig
    started: list[Edge] = field(default_factory=list)

    def __call__(
        self,
        slots: list[str],
        agents: tuple[str, ...] = ("1001", "1002"),
        settings: Settings | None = None,
        center: CenterConfig | None = None,
    ) -> Edge:
        chosen = settings or self.settings
        write_subscribers(edge_paths(chosen).db_dir, agent_subscribers(*agents))
        edge = Edge(chosen, center or self.center, slots)
        self.started.append(edge)
        edge.start()
        return edge


@pytest.fixture
def start_edge(
    edge_settings: Settings, center: CenterConfig, redis_client: redis.Redis
) -> Iterator[EdgeFactory]:
    # redis_client: an empty Redis, so no registration kept there by an earlier test's edge
    # (usrloc lives in Redis) is still routed to
    factory = EdgeFactory(edge_settings, center)
    yield factory
    for edge in factory.started:
        edge.stop()


@dataclass
class Sipp:
    """SIPp peers of one test (``callcenter.testkit.sipp``), against the edge unless told
    otherwise; background ones are stopped at teardown."""

    workdir: Path
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def scenario(self, name: str, status: int | None = None, **words: str) -> Path:
        """The kit's scenario file with its @WORDS@ filled (``status``: @STATUS@)."""
        if status is not None:
            words["status"] = str(status)
        return scenarios.scenario(name, self.workdir, **words)

    def run(
        self, scenario: Path, local: str, *args: str, timeout: float = 30, edge: str = ""
    ) -> SippResult:
        """Run a peer to the end against the edge (``edge``: another one's "host:port")."""
        target = edge or f"{EDGE_HOST}:{EDGE_PORT}"
        return sipp_kit.run(scenario, local, *args, workdir=self.workdir, target=target,
                            timeout=timeout)  # fmt: skip

    def register(
        self,
        local: str,
        user: str,
        contact: str,
        *,
        password: str | None = None,
        status: int = 200,
        domain: str = REALM,
        via: str | None = None,
    ) -> SippResult:
        """One REGISTER at the edge from ``local`` (see ``callcenter.testkit.sipp.register``)."""
        return sipp_kit.register(self.workdir, f"{EDGE_HOST}:{EDGE_PORT}", local, user, contact,
                                 password=password, status=status, domain=domain,
                                 via=via)  # fmt: skip

    def start(self, scenario: Path, local: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        """A background peer (slot or agent stand-in); returns it and its <log> file."""
        process = sipp_kit.start(scenario, local, *args, workdir=self.workdir, log=True)
        self.background.append(process)
        assert process.log_file is not None
        return process, process.log_file

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        sipp_kit.stop(process)


@pytest.fixture
def sipp(tmp_path: Path) -> Iterator[Sipp]:
    runner = Sipp(tmp_path)
    yield runner
    for process in runner.background:
        runner.stop(process)


def log_lines(path: Path, prefix: str) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.startswith(prefix)]


def slots_active(edge: Edge, uris: list[str]) -> bool:
    """Every slot answered an OPTIONS probe (active and probed, not merely not yet probed)."""
    states = edge.slot_states()
    return all(uri in states and states[uri].active and states[uri].probing for uri in uris)


def slot_loads(edge: Edge) -> dict[str, int]:
    return {uri: state.load for uri, state in edge.slot_states().items()}
