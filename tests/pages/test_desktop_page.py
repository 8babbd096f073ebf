"""The desktop and lead pages as served: labels in both languages, the reasons list, the CSRF
token for the script, the static scripts, and no token anywhere in a URL."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from pages.charts import HourFigure, answer_rate_svg
from tests.pages.conftest import csrf_of, sign_in


def test_desktop_labels_in_chinese_and_english(client: TestClient) -> None:
    sign_in(client, "1001")
    page = client.get("/desktop").text
    assert re.search(r'<button type="button" id="btn-ready"[^>]*>就绪</button>', page)
    assert re.search(r'<button type="button" id="btn-not-ready">小休</button>', page)
    for reason in ("小休", "用餐", "培训", "会议", "其他"):
        assert f">{reason}</option>" in page
    assert "班长设置" not in page  # forced is the lead's reason, not the agent's
    assert 'name="csrf-token"' in page and "token=" not in page
    english = client.get("/desktop", params={"lang": "en"}).text
    assert ">Ready</button>" in english and ">Not ready</button>" in english


def test_scripts_are_served_from_the_app(client: TestClient) -> None:
    for name in ("common.js", "desktop.js", "lead.js"):
        response = client.get(f"/static/pages/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/javascript")
        assert "token=" not in response.text and "sessionStorage" not in response.text
    assert client.get("/static/pages/../http.py").status_code == 404
    assert client.get("/static/pages/nothing.js").status_code == 404


def test_lead_console_lists_agents_and_queues(client: TestClient) -> None:
    sign_in(client, "lead1")
    page = client.get("/lead").text
    assert page.count('data-agent="') == 12
    assert 'id="queue-repair"' in page and "报修" in page
    # moving between queues: a select of the agent's queues and one of the configured queues
    assert page.count('<select class="move-from"') == 12
    assert page.count('<select class="move-to"') == 12
    assert 'class="queues-edit"' not in page  # no raw text field any more
    row = re.search(
        r'<tr id="agent-\d+" data-agent="\d+"[^>]*>\s*<td>1001</td>.*?</tr>', page, re.S
    )
    assert row, "no row for 1001"
    # a logged-out agent shows the queues they are configured for (demo roster of 1001)
    assert re.search(r'class="member-of">[^<]*报修 \(9\)', row.group(0))
    move_from = re.search(r'<select class="move-from".*?</select>', row.group(0), re.S)
    assert move_from and re.findall(r'<option value="(\w*)"', move_from.group(0)) == [
        "",
        "callback",
        "general",
        "repair",
    ]
    move_to = re.search(r'<select class="move-to".*?</select>', row.group(0), re.S)
    assert move_to and re.findall(r'<option value="(\w*)"', move_to.group(0)) == [
        "",
        "general",
        "repair",
        "complaint",
        "fees",
        "callback",
    ]
    # staffing at 10:00 (day and middle shifts): nobody in, 9 rostered, the minimum 8
    assert '<span id="staffing-shifts">早班、中班</span>' in page
    figures = dict(re.findall(r'<td id="staffing-(\w+)" class="big">(\d+)</td>', page))
    assert figures == {"online": "0", "ready": "0", "scheduled": "9", "minimum": "8"}
    # nobody logged in: the staffing alert, in the page's language only
    assert "在线坐席 0 人，低于本班最低要求" in page
    assert "agents online" not in page and "below the" not in page
    english = client.get("/lead", params={"lang": "en"}).text
    assert "agents online: 0, below the shift minimum of" in english
    assert "在线坐席" not in english


def test_answer_rate_chart_marks_hours_under_the_target() -> None:
    svg = answer_rate_svg(
        [HourFigure(9, 20, 0.95), HourFigure(10, 10, 0.5), HourFigure(11, 0, None)],
        target=0.9,
        title="今日每小时接通率",
        target_label="目标",
    )
    bars = re.findall(
        r'<rect class="bar" data-hour="(\d+)" data-rate="([\d.]+)"[^>]*fill="([^"]+)"', svg
    )
    assert bars == [("9", "0.950", "#2e7d32"), ("10", "0.500", "#c62828")]
    assert 'class="target"' in svg and "目标 90%" in svg


def test_desktop_pauses_and_resumes_the_recording_with_the_page_token(client: TestClient) -> None:
    sign_in(client, "1001")
    page = client.get("/desktop").text
    for action, label in (("pause", "暂停录音"), ("resume", "恢复录音")):
        assert re.search(rf'data-call="recording/{action}"[^>]*>{label}</button>', page)
    english = client.get("/desktop", params={"lang": "en"}).text
    assert ">Pause recording</button>" in english and ">Resume recording</button>" in english
    # what the button posts (desktop.js: /agents/me/call/ + data-call, cookie and CSRF token)
    url = "/api/v1/agents/me/call/recording/pause"
    assert client.post(url).status_code == 403  # the cookie alone is not enough
    token = csrf_of(client, "/desktop")
    refused = client.post(url, headers={"X-CSRF-Token": token})
    assert refused.status_code == 409 and "no call in progress" in refused.json()["message"]
