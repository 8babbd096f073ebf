"""Slots refuse call transfer requests themselves (defence in depth behind the edge)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from callcenter.testkit.scenarios import scenario
from callcenter.testkit.sipp import sipp
from tests.engine.conftest import EDGE_PORT, EngineProcess

pytestmark = pytest.mark.sip

SLOT0 = "127.0.0.1:16100"


def test_in_dialog_refer_sent_straight_to_a_slot_is_refused_and_nothing_is_dialled(
    start_engine: Callable[..., EngineProcess], tmp_path: Path
) -> None:
    """Issue 11's toll-fraud path with the edge bypassed: the slot itself answers 403 to a
    REFER towards a mobile number, and sends no INVITE to the edge (where trunks are)."""
    engine = start_engine(lines=2, spares=2)
    refer = scenario("caller_in_dialog.xml", tmp_path, verb="REFER", status=403)
    # Stands where the edge would be: whatever the slot dials out arrives here.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as edge:
        edge.bind(("127.0.0.1", EDGE_PORT))
        edge.settimeout(0.2)
        caller = sipp(
            refer, SLOT0, local_port=16530, media_port=46110, cwd=tmp_path,
            extra=["-s", "4008001234", "-key", "target", "13912345678"],
        )  # fmt: skip
        result = caller.result(60)
        seen: list[str] = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                packet, _ = edge.recvfrom(65535)
            except TimeoutError:
                continue
            seen.append(packet.decode(errors="replace").split("\r\n", 1)[0])
    assert result.ok(), result.failure()
    assert not [line for line in seen if line.startswith("INVITE")], seen
    assert "REFER to <sip:13912345678@" in engine.log()
