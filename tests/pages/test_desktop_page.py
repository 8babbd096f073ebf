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
    # logged-out agents' queue fields show the queues they are configured for
    assert page.count('class="queues-edit"') == 12
    assert not re.search(r'class="queues-edit"[^>]*value=""', page)
    assert 'value="callback:5,general:7,repair:9"' in page  # 1001 in the demo roster
    assert "在线坐席 0 人，低于最低要求" in page  # nobody logged in: the staffing alert


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
