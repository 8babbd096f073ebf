"""Message torture (RFC 4475 / RFC 5118 shapes, tests/edge/torture.py) at the edge over UDP:
no crash, no 5xx, OPTIONS still answered, memory steady."""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from callcenter.testkit.raw_sip import RawSip, sip_request
from ivr.edge.process import Edge
from tests.edge.conftest import (
    EDGE,
    EDGE_HOST,
    EDGE_PORT,
    EdgeFactory,
    Sipp,
    make_settings,
    slots_active,
    wait_for,
)
from tests.edge.torture import CASES

pytestmark = pytest.mark.sip

SLOT_A = "sip:127.0.0.1:15101"
SENDER = ("127.0.0.3", 15321)
ROUNDS = 10


def edge_rss_kib(edge: Edge) -> int:
    """Resident memory of the Kamailio main process and its children, in KiB."""
    assert edge.pid is not None
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(entry.name) == edge.pid or fields.get("PPid", "").strip() == str(edge.pid):
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total


def shm_used(edge: Edge) -> int:
    """Kamailio's shared memory in use, in bytes (transactions, htables, dispatcher)."""
    text = edge.rpc("core.shmmem")
    match = re.search(r"\bused:\s*(\d+)", text)
    assert match, text
    return int(match[1])


def fill(template: bytes) -> bytes:
    local = f"{SENDER[0]}:{SENDER[1]}".encode()
    return (
        template.replace(b"{branch}", f"z9hG4bK{uuid.uuid4().hex}".encode())
        .replace(b"{callid}", uuid.uuid4().hex.encode())
        .replace(b"{local}", local)
        .replace(b"{edge}", f"{EDGE_HOST}:{EDGE_PORT}".encode())
    )


def blast(rounds: int) -> list[str]:
    """Send every case `rounds` times; return the status lines of every response received."""
    statuses: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(SENDER)
        sock.settimeout(0.05)
        for _ in range(rounds):
            for template in CASES.values():
                sock.sendto(fill(template), (EDGE_HOST, EDGE_PORT))
                time.sleep(0.002)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                packet, _ = sock.recvfrom(65535)
            except TimeoutError:
                continue
            statuses.append(packet.split(b"\r\n", 1)[0].decode("utf-8", errors="replace"))
    return statuses


def test_torture_messages_never_crash_the_edge_nor_get_a_5xx(
    start_edge: EdgeFactory, sipp: Sipp, state_dir: Path, tmp_path: Path
) -> None:
    messages = tmp_path / "slot-messages.log"
    trace = ["-trace_msg", "-message_file", str(messages)]
    sipp.start(sipp.scenario("slot_uas.xml"), SLOT_A.removeprefix("sip:"), *trace)
    # The flood ban would silence the sender after 16 messages: raise it, this is about parsing.
    edge = start_edge([SLOT_A], settings=make_settings(state_dir, pike_max_requests=100000))
    wait_for(lambda: slots_active(edge, [SLOT_A]), 10, "slot answering probes")
    pid = edge.pid
    blast(1)  # warm-up: pools and caches touched once
    start = edge_rss_kib(edge), shm_used(edge)
    statuses = blast(ROUNDS // 2)
    middle = edge_rss_kib(edge), shm_used(edge)
    statuses += blast(ROUNDS - ROUNDS // 2)
    end = edge_rss_kib(edge), shm_used(edge)
    counts = Counter(status.split(" ", 2)[1] for status in statuses if status.startswith("SIP/"))
    print(
        f"torture: {len(CASES)} cases x {ROUNDS}: answers {dict(sorted(counts.items()))}; "
        f"RSS KiB {start[0]} -> {middle[0]} -> {end[0]}; shm used {start[1]} -> {middle[1]} "
        f"-> {end[1]}"
    )
    assert edge.is_running() and edge.pid == pid
    assert os.path.exists(f"/proc/{pid}")
    server_errors = [status for status in statuses if status.startswith("SIP/2.0 5")]
    assert server_errors == [], server_errors
    # None of it reached the slot.
    slot_saw = messages.read_text(errors="replace") if messages.exists() else ""
    assert "INVITE sip:" not in slot_saw
    raw = RawSip("127.0.0.3", 15322, EDGE)
    try:
        target = f"sip:{EDGE_HOST}:{EDGE_PORT}"
        answer = raw.final(sip_request("OPTIONS", target, ("127.0.0.3", 15322), content_type=None))
    finally:
        raw.close()
    assert answer is not None and answer.status == 200
    # Steady: after the first half, shared memory in use barely moves (a leak of even a few
    # hundred bytes per message would show); RSS grows only while workers touch pool pages
    # for the first time, so its bound is loose.
    assert end[1] - middle[1] <= 32 * 1024, (start, middle, end)
    assert end[0] - middle[0] <= 4096, (start, middle, end)
