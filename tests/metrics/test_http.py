"""Prometheus exposition, wallboard JSON, reports (JSON/CSV), staffing, roles, bad input."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from callcenter.streams import AgentEventType, EventType
from tests.conftest import auth

from .conftest import Events, local

E = EventType


def _recent(events: Events) -> None:
    """A few calls in the last minutes of real time (the endpoints read 'now')."""
    now = datetime.now(UTC)
    from datetime import timedelta

    t = lambda s: now - timedelta(seconds=s)  # noqa: E731
    events.agent(
        AgentEventType.state_changed,
        "1",
        t(300),
        **{"from": "logged_out", "to": "ready", "queues": ["general", "repair"]},
    )
    events.call(E.call_queued, "p1", t(200), queue="general")
    events.call(E.agent_answered, "p1", t(190), agent_id="1")
    events.call(E.call_ended, "p1", t(100))
    events.call(E.wrap_up_ended, "p1", t(80), agent_id="1")
    events.call(E.call_queued, "p2", t(150), queue="repair")
    events.call(E.abandoned, "p2", t(148), queue="repair")  # short
    events.call(E.call_queued, "p3", t(60), queue="repair")
    events.call(E.abandoned, "p3", t(20), queue="repair")
    events.call(E.call_queued, "p4", t(30), queue="fees")  # waiting
    events.drain()


def test_prometheus_exposition_has_the_stable_names_and_labels(
    api: TestClient, events: Events
) -> None:
    _recent(events)
    body = api.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(body)}
    for name in (
        "callcenter_calls_offered",
        "callcenter_calls_answered",
        "callcenter_calls_abandoned",
        "callcenter_calls_short_abandoned",
    ):
        samples = [s for s in families[name].samples if s.name == name + "_total"]
        assert samples and all(set(s.labels) == {"queue", "shift"} for s in samples)
    offered = {
        s.labels["queue"]: s.value
        for s in families["callcenter_calls_offered"].samples
        if s.name.endswith("_total")
    }
    assert offered == {"general": 1, "repair": 2, "fees": 1}
    short = {
        s.labels["queue"]: s.value
        for s in families["callcenter_calls_short_abandoned"].samples
        if s.name.endswith("_total") and s.value
    }
    assert short == {"repair": 1}
    waiting = {s.labels["queue"]: s.value for s in families["callcenter_calls_waiting"].samples}
    assert waiting["fees"] == 1 and waiting["general"] == 0
    longest = {
        s.labels["queue"]: s.value for s in families["callcenter_longest_wait_seconds"].samples
    }
    assert longest["fees"] >= 30
    agents = {
        (s.labels["state"], s.labels["queue"]): s.value
        for s in families["callcenter_agents"].samples
    }
    assert agents[("ready", "all")] == 1 and agents[("ready", "repair")] == 1
    rates = {
        (s.labels["queue"], s.labels["window"]): s.value
        for s in families["callcenter_answer_rate"].samples
    }
    assert rates[("general", "15m")] == 1.0
    assert rates[("repair", "today")] == 0.0  # 1 abandoned, the short one left out
    assert rates[("all", "60m")] == 1 / 3  # p4, still waiting, counts in the base
    assert {w for _, w in rates} == {"today", "shift", "15m", "60m"}
    assert ("all", "today") in {
        (s.labels["queue"], s.labels["window"])
        for s in families["callcenter_service_level"].samples
    }
    wait = families["callcenter_wait_seconds"]
    assert wait.type == "histogram"
    counts = {s.labels["queue"]: s.value for s in wait.samples if s.name.endswith("_count")}
    assert counts == {"general": 1}
    handle = [s for s in families["callcenter_handle_seconds"].samples if s.name.endswith("_sum")]
    assert handle[0].value == 110.0  # 90 s talk + 20 s wrap-up


def test_wallboard_json_and_roles(api: TestClient, events: Events) -> None:
    _recent(events)
    assert api.get("/api/v1/wallboard").status_code == 401
    assert api.get("/api/v1/wallboard", headers=auth(api, "1001")).status_code == 403
    for user in ("lead1", "qa1", "admin"):
        response = api.get("/api/v1/wallboard", headers=auth(api, user))
        assert response.status_code == 200
    body = response.json()
    assert body["queues"]["fees"]["waiting"] == 1
    assert body["center"]["windows"]["today"]["offered"] == 4
    assert body["answer_rate_target"] == 0.9
    assert {"kind", "queue", "zh-CN", "en"} <= set(body["alerts"][0])


def test_reports_json_and_csv(api: TestClient, events: Events) -> None:
    # stored call events are what reports read; here they are written like the calls consumer
    from cti.models import Call
    from cti.models import CallEvent as Row

    ctx = api.app.state.ctx  # type: ignore[attr-defined]
    rows = [
        ("q1", "call_queued", local(27, 10, 0), {"queue": "general"}),
        ("q1", "agent_answered", local(27, 10, 0, 12), {"agent_id": 2}),
        ("q1", "call_ended", local(27, 10, 3), {}),
        ("q2", "call_queued", local(27, 11, 0), {"queue": "general"}),
        ("q2", "abandoned", local(27, 11, 1), {"queue": "general"}),
    ]
    with ctx.sessions() as session, session.begin():
        for call_id in ("q1", "q2"):
            session.add(Call(id=call_id))
        session.flush()
        for n, (call_id, kind, at, data) in enumerate(rows):
            session.add(Row(call_id=call_id, stream_id=f"1-{n}", type=kind, at=at, data=data))
    headers = auth(api, "lead1")
    params = {"from": "2026-11-27T00:00:00", "to": "2026-11-28T00:00:00", "group": "queue"}
    body = api.get("/api/v1/reports/hour", params=params, headers=headers).json()
    by_hour = {r["period"]: r for r in body["rows"]}
    assert by_hour["2026-11-27 10:00"]["answered"] == 1
    assert by_hour["2026-11-27 10:00"]["asa_seconds"] == 12
    assert by_hour["2026-11-27 11:00"]["abandoned"] == 1
    day = api.get("/api/v1/reports/day", params=params, headers=headers).json()["rows"]
    assert day[0]["answer_rate"] == 0.5 and day[0]["aht_seconds"] == 168
    agent = api.get(
        "/api/v1/reports/week", params={**params, "group": "agent"}, headers=headers
    ).json()["rows"]
    assert agent[0]["agent"] == "2" and agent[0]["period"] == "2026-W48"
    response = api.get("/api/v1/reports/day", params={**params, "format": "csv"}, headers=headers)
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert table[0]["queue"] == "general" and table[0]["offered"] == "2"
    # bad input: clear errors
    bad = api.get("/api/v1/reports/month", params=params, headers=headers)
    assert bad.status_code == 422 and "period" in bad.json()["message"]
    bad = api.get("/api/v1/reports/day", params={**params, "group": "planet"}, headers=headers)
    assert bad.status_code == 422 and "group" in bad.json()["message"]
    bad = api.get(
        "/api/v1/reports/day", params={"from": "2026-11-28", "to": "2026-11-27"}, headers=headers
    )
    assert bad.status_code == 422
    assert api.get("/api/v1/reports/day", headers=auth(api, "1001")).status_code == 403
    assert "/api/v1/reports/{period}" in api.get("/openapi.json").json()["paths"]


def test_staffing_against_the_shift_plan(api: TestClient) -> None:
    from cti.models import Call
    from cti.models import CallEvent as Row

    ctx = api.app.state.ctx  # type: ignore[attr-defined]
    with ctx.sessions() as session, session.begin():
        n = 0
        for minute in range(0, 60, 1):  # 60 calls in the 10:00 hour, 3-minute handle
            call_id = f"s{minute}"
            session.add(Call(id=call_id))
            session.flush()
            start = local(27, 10, minute)
            for kind, seconds in (("call_queued", 0), ("agent_answered", 10), ("call_ended", 190)):
                data = {"queue": "general"} if kind == "call_queued" else {"agent_id": 1}
                session.add(
                    Row(
                        call_id=call_id,
                        stream_id=f"2-{n}",
                        type=kind,
                        data=data,
                        at=start + __import__("datetime").timedelta(seconds=seconds),
                    )
                )
                n += 1
    body = api.get(
        "/api/v1/staffing",
        params={"from": "2026-11-27T00:00:00", "to": "2026-11-28T00:00:00"},
        headers=auth(api, "lead1"),
    ).json()
    ten = body["hours"][10]
    assert ten["calls_per_hour"] == 60 and ten["aht_seconds"] == 180
    assert ten["load_erlangs"] == 3.0
    # Erlang C for 3 Erlangs, 80% in 20 s with a 3-minute handle time needs 5 agents
    assert ten["agents_for_service_level_erlang_c"] == 5
    assert ten["planned_agents"] == 9  # demo roster: 5 day + 4 mid agents at 10:30
    assert ten["minimum_agents"] == 8
    assert ten["short_by"] == 0
    night = body["hours"][3]
    assert night["calls_per_hour"] == 0 and night["minimum_agents"] == 2
    assert night["planned_agents"] == 3
    assert body["under_staffed"] == [
        {"hour": h["hour"], "short_by": h["short_by"]} for h in body["hours"] if h["short_by"]
    ]


def test_grafana_dashboard_uses_only_exposed_metric_names(api: TestClient, events: Events) -> None:
    import json
    import re
    from pathlib import Path

    _recent(events)
    exposed = set()
    for family in text_string_to_metric_families(api.get("/metrics").text):
        exposed |= {sample.name for sample in family.samples}
    dashboard = json.loads(
        (Path(__file__).parents[2] / "docs" / "grafana" / "callcenter.json").read_text()
    )
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"callcenter_[a-z_]+", target["expr"])
    }
    assert used and used <= exposed, used - exposed


def test_metrics_and_wallboard_say_so_when_redis_is_down(api: TestClient) -> None:
    import dataclasses

    import redis
    from prometheus_client import CollectorRegistry, generate_latest

    from metrics.prometheus import LiveCollector

    ctx = api.app.state.ctx  # type: ignore[attr-defined]
    down = dataclasses.replace(
        ctx, redis=redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    )
    registry = CollectorRegistry()
    registry.register(LiveCollector(down))
    assert b"callcenter_metrics_up 0.0" in generate_latest(registry)
    assert b"callcenter_metrics_up 1.0" in api.get("/metrics").content
    headers = auth(api, "lead1")
    api.app.state.ctx = down  # type: ignore[attr-defined]
    try:
        response = api.get("/api/v1/wallboard", headers=headers)
    finally:
        api.app.state.ctx = ctx  # type: ignore[attr-defined]
    assert response.status_code == 503 and "Redis" in response.json()["message"]
