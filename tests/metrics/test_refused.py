"""Calls refused at the SIP edge (every line busy, unknown number, flood ban, dial plan) are
counted: a call record each, a counter per reason on /metrics, the center's figures on the
wallboard, and an answer rate that includes them beside the queue answer rate."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import select

from callcenter.context import AppContext
from callcenter.db import transaction
from callcenter.streams import CallEvent, EventType
from cti.models import Call
from ivr.records import apply_event
from metrics.prometheus import LiveCollector

from .conftest import Events, local

E = EventType


def _refuse(events: Events, n: int, reason: str, second: float) -> None:
    events.call(
        E.call_refused,
        f"refused-{n}",
        local(28, 10, 0, second),
        caller=f"1390000000{n}",
        did="4008001234",
        reason=reason,
        source="127.0.0.3",
    )


def test_refused_calls_count_for_the_center_by_reason(ctx: AppContext, events: Events) -> None:
    events.call(E.call_queued, "ok-1", local(28, 10, 0, 0), queue="general")
    events.call(E.agent_answered, "ok-1", local(28, 10, 0, 6), agent_id="1")
    _refuse(events, 1, "no_slot", 10)
    _refuse(events, 2, "no_slot", 11)
    _refuse(events, 3, "unknown_did", 12)
    _refuse(events, 4, "<script>", 13)  # a reason nobody defined is counted as other
    events.drain()

    snap = events.snapshot(local(28, 10, 5))
    today = snap["center"]["windows"]["today"]
    assert today["refused"] == 4
    assert today["refused_by_reason"] == {"no_slot": 2, "other": 1, "unknown_did": 1}
    assert today["answer_rate"] == pytest.approx(1.0)  # the queue answer rate
    assert today["answer_rate_with_refused"] == pytest.approx(1 / 5)
    assert snap["center"]["windows"]["shift"]["refused"] == 4
    assert snap["shifts"]["mid"]["center"]["refused"] == 4
    general = snap["queues"]["general"]["windows"]["today"]
    assert general["refused"] == 0 and general["offered"] == 1

    registry = CollectorRegistry()
    registry.register(LiveCollector(ctx))
    text = generate_latest(registry).decode()
    assert 'callcenter_calls_refused_total{reason="no_slot"} 2.0' in text
    assert 'callcenter_calls_refused_total{reason="unknown_did"} 1.0' in text


def test_a_refused_call_has_a_call_record(ctx: AppContext) -> None:
    event = CallEvent(
        E.call_refused,
        "refused-9",
        node="edge",
        at=local(28, 10, 0, 1).isoformat(),
        data={"caller": "13900000009", "did": "4008001234", "reason": "no_slot"},
    )
    with transaction(ctx.sessions) as session:
        apply_event(session, "1-1", event)
    with ctx.sessions() as session:
        call = session.scalar(select(Call).where(Call.id == "refused-9"))
        assert call is not None
        assert (call.caller_number, call.did, call.outcome, call.end_reason) == (
            "13900000009",
            "4008001234",
            "refused",
            "no_slot",
        )
        assert call.arrived_at is not None and call.arrived_at == call.ended_at


def test_the_report_counts_refused_calls_for_the_center(ctx: AppContext) -> None:
    from datetime import timedelta

    from metrics import reports

    steps = [
        CallEvent(E.call_queued, "r-ok", at=local(28, 10).isoformat(), data={"queue": "fees"}),
        CallEvent(E.agent_answered, "r-ok", at=local(28, 10, 0, 5).isoformat(), data={}),
        CallEvent(E.call_ended, "r-ok", at=local(28, 10, 2, 0).isoformat(), data={}),
        *(
            CallEvent(E.call_refused, f"r-{n}", node="edge", at=local(28, 10, 3, n).isoformat(),
                      data={"reason": reason})
            for n, reason in enumerate(("no_slot", "no_slot", "flood_banned"))
        ),
    ]  # fmt: skip
    with transaction(ctx.sessions) as session:
        for n, event in enumerate(steps):
            apply_event(session, f"1-{n}", event)
    start = local(28, 0)
    (center,) = reports.report(
        ctx, start=start, end=start + timedelta(days=1), period="day", group="center"
    )
    assert (center["answered"], center["refused"]) == (1, 3)
    assert center["refused_by_reason"] == {"flood_banned": 1, "no_slot": 2}
    assert center["answer_rate_with_refused"] == pytest.approx(1 / 4)
    csv_text = reports.to_csv([center], "center")
    assert "refused_no_slot" in csv_text.splitlines()[0]
    by_queue = reports.report(
        ctx, start=start, end=start + timedelta(days=1), period="day", group="queue"
    )
    assert [(r["queue"], r["refused"]) for r in by_queue] == [("fees", 0)]
