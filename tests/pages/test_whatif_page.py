"""The what-if page (/lead/whatif): leads compare two staffing plans over the same callers,
through the real simulator (the routing script on a scratch key space of the test Redis).
Roles, CSRF, bad input naming the field, a stored day with no calls, and two plans run side by
side with the per-hour table and the charts. (In a real browser: tests/pages/test_browser.py.)
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from callcenter.context import AppContext
from metrics.whatif_inputs import plan_in_force, synthetic_arrivals
from pages.whatif import SYNTHETIC_DAY, config_for, settings_in_force
from pages.whatif_form import QueueSetting, read_plan

from .conftest import csrf_of, sign_in


def _form(csrf: str, **extra: str) -> dict[str, str]:
    """A small built-in day (volume 0.2) and two plans on the day shift only."""
    return {
        "csrf_token": csrf,
        "source": "synthetic",
        "seed": "3",
        "volume": "0.2",
        "a_ring_seconds": "4",
        "a_shift_0": "day",
        "a_count_0": "1",
        "a_queues_0": "general,repair,fees,complaint",
        "b_ring_seconds": "4",
        "b_shift_0": "day",
        "b_count_0": "6",
        "b_queues_0": "general:5,repair:5,fees:5,complaint:5",
        **extra,
    }


def _cell(html: str, plan: str, figure: str) -> str:
    found = re.search(
        rf'id="whatif-summary".*?<td class="plan-{plan}" data-figure="{figure}">([^<]*)</td>',
        html,
        re.S,
    )
    assert found, f"no {figure} for plan {plan}"
    return found.group(1)


def test_only_leads_and_admins_open_it(client: TestClient) -> None:
    signed_out = client.get("/lead/whatif", follow_redirects=False)
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/login")
    for username in ("1001", "qa1"):
        sign_in(client, username)
        assert client.get("/lead/whatif").status_code == 403
    sign_in(client, "admin")
    assert client.get("/lead/whatif").status_code == 200
    sign_in(client, "lead1")
    assert 'href="/lead/whatif?lang=zh-CN"' in client.get("/lead").text  # in the nav


def test_the_form_starts_from_the_plan_in_force_in_both_languages(
    ctx: AppContext, client: TestClient
) -> None:
    sign_in(client, "lead1")
    page = client.get("/lead/whatif")
    assert page.status_code == 200 and "排班模拟：两个方案对比" in page.text
    in_force = plan_in_force(ctx)
    assert sum(g.count for g in in_force.agents) >= 10  # the demo roster, not the built-in plan
    first = in_force.agents[0]
    queues = ",".join(f"{q}:{level}" for q, level in first.queues.items())
    for plan in ("a", "b"):
        assert f'name="{plan}_count_0" value="{first.count}"' in page.text
        assert f'name="{plan}_queues_0" value="{queues}"' in page.text
    repair = ctx.config.queues.queues["repair"]
    assert repair.overflow is not None
    assert f'name="a_wrap_repair" value="{repair.wrap_up_seconds}"' in page.text
    assert f'name="b_overflow_repair" value="{repair.overflow.after_seconds}"' in page.text
    assert 'name="a_overflow_general"' not in page.text  # general does not overflow
    english = client.get("/lead/whatif", params={"lang": "en"}).text
    assert "What-if: compare two plans" in english and "Run both" in english


def test_a_post_without_the_csrf_token_is_refused(client: TestClient) -> None:
    sign_in(client, "lead1")
    response = client.post("/lead/whatif", data=_form(""))
    assert response.status_code == 403 and "CSRF" in response.text


def test_bad_plan_input_names_the_plan_row_and_field_and_keeps_what_was_typed(
    client: TestClient,
) -> None:
    sign_in(client, "lead1")
    csrf = csrf_of(client, "/lead/whatif")
    bad = _form(
        csrf,
        a_count_0="two",
        b_queues_0="general:5,nosuch:3",
        b_shift_1="weekend",
        b_count_1="2",
        b_queues_1="general",
        volume="9",
    )
    response = client.post("/lead/whatif", data=bad)
    assert response.status_code == 422
    problems = re.findall(r"<li>([^<]*)</li>", response.text)
    assert any("方案 A · 行 1 · 人数" in p and "two" in p for p in problems), problems
    assert any("方案 B · 行 1 · 队列:技能等级" in p and "nosuch" in p for p in problems)
    assert any("方案 B · 行 2 · 班次" in p and "weekend" in p for p in problems)
    assert any("话务量倍数" in p for p in problems)
    assert 'name="a_count_0" value="two"' in response.text  # nothing typed is lost
    assert 'id="whatif-result"' not in response.text

    english = client.post("/lead/whatif?lang=en", data=_form(csrf, b_ring_seconds="-1"))
    assert english.status_code == 422
    assert "Plan B · Ring seconds: must be a number from 0 to 120" in english.text


def test_a_stored_day_without_calls_says_so(client: TestClient) -> None:
    sign_in(client, "lead1")
    csrf = csrf_of(client, "/lead/whatif")
    response = client.post(
        "/lead/whatif?lang=en", data=_form(csrf, source="stored", day="2019-01-01")
    )
    assert response.status_code == 422
    assert "Day: no queued calls are stored for that day (2019-01-01)" in response.text


def test_two_plans_side_by_side_with_hours_erlang_and_charts(client: TestClient) -> None:
    sign_in(client, "lead1")
    csrf = csrf_of(client, "/lead/whatif")
    response = client.post("/lead/whatif", data=_form(csrf))
    assert response.status_code == 200, re.findall(r"<li>([^<]*)</li>", response.text)
    html = response.text
    assert 'id="whatif-result"' in html
    rate = {p: float(_cell(html, p, "answer_rate").rstrip("%")) for p in ("a", "b")}
    assert rate["a"] < rate["b"]  # one agent against six on the same callers
    assert (_cell(html, "a", "agents"), _cell(html, "b", "agents")) == ("1", "6")
    assert int(_cell(html, "a", "abandoned")) > int(_cell(html, "b", "abandoned"))
    # the same callers for both (offered counts queue legs, so overflows add to it)
    callers = len(synthetic_arrivals(SYNTHETIC_DAY, "Asia/Shanghai", seed=3, volume=0.2))
    assert f"{callers} 通来电" in html
    hours = re.findall(r'<tr data-hour="(\d+)">', html)
    assert "10" in hours and len(hours) == len(set(hours)) <= 24  # each hour with calls once
    row = html[html.index('<tr data-hour="10">') :].split("</tr>", 1)[0]
    assert re.search(r'data-figure="erlang_c_service_level">\d', row)  # Erlang beside it
    for chart in ("chart-answer-rate", "chart-service-level"):
        svg = html[html.index(f'id="{chart}"') :].split("</svg>", 1)[0]
        series = set(
            re.findall(
                r'<rect class="bar" data-hour="\d+" data-rate="[\d.]+" '
                r'data-series="([^"]+)"',
                svg,
            )
        )
        assert series == {"方案 A", "方案 B"}
        assert 'class="target"' in svg
    assert "每小时接通率：方案 A 与 B" in html and "目标 80%" in html


def test_read_plan_alone() -> None:
    form: dict[str, Any] = {
        "a_ring_seconds": "6",
        "a_shift_0": "night",
        "a_count_0": "3",
        "a_queues_0": " general , repair:8 ",
        "a_shift_1": "day",
        "a_count_1": "",
        "a_queues_1": "",
    }
    queues = {"general": QueueSetting(30, None), "repair": QueueSetting(20, 90)}
    form |= {"a_wrap_general": "45", "a_overflow_repair": ""}  # empty: as in force
    plan, problems = read_plan(form, "a", "en", shifts={"night", "day"}, queues=queues)
    assert problems == []
    assert plan.plan is not None and plan.plan.ring_seconds == 6
    assert [g.model_dump() for g in plan.plan.agents] == [
        {"shift": "night", "count": 3, "queues": {"general": 5, "repair": 8}}
    ]
    assert plan.queue_settings == {
        "general": QueueSetting(45, None),
        "repair": QueueSetting(20, 90),
    }
    _empty, problems = read_plan({"a_count_0": ""}, "a", "en", shifts=set(), queues={})
    assert problems == ["Plan A · Agents: the plan needs at least one row"]
    bad = form | {"a_wrap_general": "-3", "a_overflow_repair": "2"}
    _bad, problems = read_plan(bad, "a", "en", shifts={"night"}, queues=queues)
    assert problems == [
        "Plan A · general · Wrap-up seconds: must be a whole number from 0 to 1800 ('-3')",
        "Plan A · repair · Overflow after (s): must be a whole number from 5 to 3600 ('2')",
    ]


def test_a_plans_queue_settings_change_a_copy_of_the_configuration(ctx: AppContext) -> None:
    in_force = settings_in_force(ctx.config)
    assert in_force["repair"].overflow_after_seconds is not None
    tried = {**in_force, "repair": QueueSetting(5, 30), "general": QueueSetting(0, None)}
    config = config_for(ctx.config, tried)
    repair = config.queues.queues["repair"]
    assert repair.wrap_up_seconds == 5 and repair.overflow is not None
    assert repair.overflow.after_seconds == 30
    assert config.queues.queues["general"].wrap_up_seconds == 0
    assert settings_in_force(ctx.config) == in_force  # the center's own is untouched
