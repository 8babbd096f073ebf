"""``callcenter up`` gives up, loudly, when the engine keeps dying (real processes, SIP ports:
run under the global lock)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.foundation.test_up_supervision import EDGE_PORT, bound_to_udp_port, start_up

pytestmark = pytest.mark.sip


def test_up_gives_up_loudly_when_the_engine_keeps_dying(tmp_path: Path) -> None:
    # Kamailio "refuses" every configuration: the engine exits at each start.
    running = start_up(
        tmp_path,
        {
            "CALLCENTER_SIP__KAMAILIO_BINARY": "/bin/false",
            "CALLCENTER_SIP__LINES": "2",
            "CALLCENTER_SIP__WARM_SPARES": "1",
        },
    )
    try:
        code = running.proc.wait(timeout=120)
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
    output = running.output()
    assert code == 1, output[-3000:]
    assert "engine died 5 times within 60 s" in output and "giving up" in output, output[-3000:]
    assert output.count("restarting in") == 4
    assert "stopped." in output
    assert not bound_to_udp_port(EDGE_PORT)
