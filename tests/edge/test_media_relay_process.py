"""rtpengine as a supervised child (ivr/edge/media_relay.py): it answers its NG ping once
started, stops on request, and dies with the process that started it, even by SIGKILL.
Real rtpengine (userspace) on free loopback ports; no SIP."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from callcenter.testkit.faults import alive, free_port, wait_for
from config.settings import Settings
from ivr.edge.media_relay import MediaRelay, ng_ping

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _rtpengine() -> None:
    if not shutil.which("rtpengine"):
        pytest.fail("the media relay tests need rtpengine (bash scripts/dev.sh setup)")


def _settings(control: int) -> Settings:
    settings = Settings(environment="test")
    relay = settings.sip.media_relay
    relay.rtpengine = f"udp:127.0.0.1:{control}"
    relay.address = "127.0.0.9"
    relay.port_min, relay.port_max = 17600, 17699
    return settings


def test_relay_starts_answers_and_stops(tmp_path: Path) -> None:
    control = free_port()
    relay = MediaRelay(_settings(control), tmp_path)
    relay.start()
    try:
        assert relay.is_running() and ng_ping("127.0.0.1", control)
        assert "--table=-1" in relay.command()  # userspace: no kernel module
    finally:
        relay.stop()
    assert not relay.is_running()
    assert not ng_ping("127.0.0.1", control)


def test_relay_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    control = free_port()
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from tests.edge.test_media_relay_process import _settings
        from ivr.edge.media_relay import MediaRelay
        relay = MediaRelay(_settings({control}), Path({str(tmp_path)!r}))
        relay.start()
        print(relay.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line.strip(), "the parent did not start rtpengine"
    pid = int(line)
    try:
        assert alive(pid) and ng_ping("127.0.0.1", control)
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        wait_for(lambda: not alive(pid), 5, "rtpengine to end with its parent")
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
