"""Engine fixtures: a real ``callcenter engine`` process with short menu timeouts, SIPp peers.

Ports (loopback only): slots SIP 16100+, slot RTP 40000+, SIPp callers 16500+, SIPp agents
16600+, SIPp media 46000+. Prompts are rendered once per session and copied into each
test's state directory (the engine still checks every one at start).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from callcenter.redis_keys import Keys
from callcenter.streams import CallEvent
from callcenter.testkit.config import menu_toml, queues_toml, settings_file, telephony_toml
from config.loader import load_config
from config.settings import DEFAULT_CONFIG_DIR, Settings
from ivr.prompts import copy_cache, prepare_all
from tests.conftest import TEST_REDIS_URL

REPO = Path(__file__).resolve().parents[2]
SLOT_BASE_PORT = 16100
RTP_BASE_PORT = 40000
EDGE_PORT = 16050
TRUNK_PORT = 16620


def make_test_config(
    target: Path, trunk_host: str = "127.0.0.1", trunk_port: int = TRUNK_PORT
) -> Path:
    """The shipped config with short menu timeouts (protocol timers shortened, not mocked)
    and a carrier trunk at ``trunk_host:trunk_port``."""
    shutil.copytree(DEFAULT_CONFIG_DIR, target, dirs_exist_ok=True)
    short = {"first_digit_timeout": 2.0, "inter_digit_timeout": 1.5}
    # Short prompts for the two menus the tests walk through (the real ones last 15 s).
    menu = menu_toml(
        main={"prompt": {"text": "测试热线，报修按1。"}, "max_retries": 1, **short},
        repair_room={"prompt": {"text": "请输入房间号，以井号键结束。"}, **short},
    )
    (target / "menu.toml").write_text(menu, encoding="utf-8")
    queues = queues_toml(general={"announce_every_seconds": 8})
    (target / "queues.toml").write_text(queues, encoding="utf-8")
    # a carrier trunk on loopback (a SIPp UAS plays the customer) for callbacks and one
    # allowed transfer number
    telephony = telephony_toml(
        {
            "sip_domain": "callcenter.local",
            "outbound_trunk": "carrier",
            "dids": [{"number": "4008001234"}],
            "trunks": {"carrier": {"host": trunk_host, "port": trunk_port}},
            "transfer_targets": {
                "duty_manager": {
                    "name": {"zh-CN": "值班经理", "en": "Duty manager"},
                    "number": "13900000099",
                    "trunk": "carrier",
                }
            },
        }
    )
    (target / "telephony.toml").write_text(telephony, encoding="utf-8")
    config = load_config(target)  # still valid
    assert "测试热线" in (config.menu.nodes["main"].prompt.text or "")  # type: ignore[union-attr]
    return target


@pytest.fixture(scope="session")
def engine_config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_config(tmp_path_factory.mktemp("engine-config"))


@pytest.fixture(scope="session")
def prompt_cache(tmp_path_factory: pytest.TempPathFactory, engine_config_dir: Path) -> Path:
    state = tmp_path_factory.mktemp("prompt-cache")
    prepare_all(load_config(engine_config_dir), state, "zh-CN")
    return state / "prompts"


@dataclass
class EngineProcess:
    process: subprocess.Popen[bytes]
    settings: Settings
    log_path: Path
    redis: redis.Redis

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def pool(self) -> dict[str, str]:
        key = Keys(self.settings.redis_prefix).engine_pool(self.settings.node_id)
        return self.redis.hgetall(key)  # type: ignore[return-value]

    def slot_pid(self, slot: str) -> int:
        return int(self.pool()[f"slot:{slot}"].split()[0])

    def stop(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def events(client: redis.Redis, prefix: str = "cc") -> list[tuple[str, CallEvent]]:
    entries: Any = client.xrange(f"{prefix}:events")
    return [(i, CallEvent.from_fields(f)) for i, f in entries]


def call_events(client: redis.Redis, call_id: str) -> list[CallEvent]:
    return [e for _i, e in events(client) if e.call_id == call_id]


def call_of(client: redis.Redis, caller: str) -> str | None:
    for _i, event in events(client):
        if event.type == "call_arrived" and event.data.get("caller") == caller:
            return event.call_id
    return None


@pytest.fixture
def start_engine(
    tmp_path: Path,
    settings: Settings,
    redis_client: redis.Redis,
    engine_config_dir: Path,
    prompt_cache: Path,
) -> Iterator[Callable[..., EngineProcess]]:
    started: list[EngineProcess] = []

    def start(
        lines: int = 4,
        spares: int = 2,
        records: bool = False,
        edge: bool = False,
        config_dir: Path | None = None,
        redis_url: str | None = None,
        **sip: Any,
    ) -> EngineProcess:
        """``config_dir``: a test's own config (default: the session's short-timeout copy);
        prompts it adds to the session's are rendered by the engine at start. ``redis_url``:
        a Redis of the test's own (default: the test Redis)."""
        client = (
            redis_client
            if redis_url is None
            else redis.Redis.from_url(redis_url, decode_responses=True)
        )
        copy_cache(prompt_cache, settings.state_dir)
        sip_values = {
            "slot_base_port": SLOT_BASE_PORT,
            "rtp_base_port": RTP_BASE_PORT,
            "lines": lines,
            "warm_spares": spares,
            # without the edge, SIPp calls the slots directly from loopback
            "slot_allow_from": [] if edge else ["127.0.0.1"],
            "rtp_silence_timeout_seconds": 30,
            "edge_port": EDGE_PORT,
            **sip,
        }
        values = {
            "environment": "test",
            "state_dir": settings.state_dir,
            "database_url": settings.database_url,
            "redis_url": redis_url or TEST_REDIS_URL,
            "config_dir": config_dir or engine_config_dir,
            "sip": sip_values,
        }
        engine_file = settings_file(tmp_path / "engine.toml", values)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
        env.update(
            CALLCENTER_SETTINGS_FILE=str(engine_file),
            CALLCENTER_ENGINE_EDGE="1" if edge else "0",
            CALLCENTER_ENGINE_RECORDS="1" if records else "0",
            PYTHONPATH=str(REPO),
        )
        log_path = tmp_path / "engine.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "callcenter.cli", "engine"],
            cwd=tmp_path,
            env=env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        engine = EngineProcess(process, Settings(**values), log_path, client)  # type: ignore[arg-type]
        started.append(engine)

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"engine exited early:\n{engine.log()}")
            return int(engine.pool().get("ready", 0)) >= min(spares, lines)

        wait_for(ready, 30, "the slot pool to be ready")
        # the heartbeat starts once the edge (when asked for) answers OPTIONS
        wait_for(lambda: client.exists("cc:proc:engine:alive"), 30, "the engine to run")
        return engine

    yield start
    for engine in started:
        engine.stop()


@pytest.fixture
def pcaps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from callcenter.testkit.rtp import tone_pcap

    directory = tmp_path_factory.getbasetemp() / "pcaps"
    directory.mkdir(exist_ok=True)
    found = {}
    for name, freq in (("caller", 440.0), ("agent", 1000.0)):
        path = directory / f"{name}.pcap"
        if not path.exists():
            tone_pcap(path, freq, 20)
        found[name] = path
    return found
