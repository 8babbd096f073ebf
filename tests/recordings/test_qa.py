"""QA: scorecards from qa.toml, weighted totals, 422 naming the wrong item, per-agent lists and
weekly trends, one dispute per evaluation, and the reproducible weekly sample."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update

from callcenter.context import AppContext
from recordings.models import Evaluation
from tests.conftest import auth
from tests.recordings.conftest import MadeCall

FULL = {
    "greeting": 5,
    "identify_caller": 5,
    "understanding": 5,
    "accuracy": 5,
    "resolution": 5,
    "tone": 5,
    "closing": 5,
}


def _evaluate(
    client: TestClient, recording_id: str, scores: dict[str, Any], user: str = "qa1"
) -> Any:
    return client.post(
        "/api/v1/qa/evaluations",
        json={
            "recording_id": recording_id,
            "scorecard": "service",
            "scores": scores,
            "comment": "问候语规范",
        },
        headers=auth(client, user),
    )


def test_scorecards_come_from_the_config(client: TestClient) -> None:
    response = client.get("/api/v1/qa/scorecards", headers=auth(client, "qa1"))
    assert response.status_code == 200
    (card,) = response.json()
    assert card["code"] == "service" and card["default"] is True
    items = {item["code"]: item for item in card["items"]}
    assert set(items) == set(FULL)
    assert items["greeting"]["weight"] == 15
    assert "您好！先生（女士）我能为您做点什么？" in items["greeting"]["phrases"]
    assert sum(item["weight"] for item in items.values()) == 100
    assert client.get("/api/v1/qa/scorecards", headers=auth(client, "eng1")).status_code == 403


def test_weighted_total_and_status(client: TestClient, make_call: Callable[..., MadeCall]) -> None:
    made = make_call(agent="1001")
    scores = {**FULL, "understanding": 4, "accuracy": 3, "closing": 0}
    response = _evaluate(client, made.recording_id, scores)
    assert response.status_code == 201, response.text
    body = response.json()
    # 15 + 10 + 20*4/5 + 20*3/5 + 20 + 10 + 0 = 83 of 100
    assert body["total"] == 83.0
    assert body["agent"] == "1001" and body["evaluator"] == "qa1"
    assert body["call_id"] == made.call_id
    found = client.get(
        "/api/v1/recordings", params={"qa_status": "scored"}, headers=auth(client, "qa1")
    ).json()["items"]
    assert [item["id"] for item in found] == [made.recording_id]
    assert _evaluate(client, made.recording_id, FULL, user="lead1").json()["total"] == 100.0


def test_bad_scores_are_refused_naming_the_item(
    client: TestClient, make_call: Callable[..., MadeCall]
) -> None:
    made = make_call()
    cases: list[tuple[dict[str, Any], str]] = [
        ({**FULL, "bogus": 3}, "scores.bogus"),
        ({**FULL, "tone": 6}, "scores.tone: 6 is out of range 0..5"),
        ({**FULL, "tone": -1}, "scores.tone"),
        ({**FULL, "tone": "good"}, "scores.tone: must be a number"),
        ({k: v for k, v in FULL.items() if k != "closing"}, "scores.closing: missing"),
    ]
    for scores, words in cases:
        response = _evaluate(client, made.recording_id, scores)
        assert response.status_code == 422, scores
        assert response.json()["error_id"] == "evaluations.invalid-scores"
        assert words in response.json()["message"], response.json()["message"]
    unknown = client.post(
        "/api/v1/qa/evaluations",
        json={"recording_id": made.recording_id, "scorecard": "nope", "scores": FULL},
        headers=auth(client, "qa1"),
    )
    assert unknown.status_code == 422 and "'nope'" in unknown.json()["message"]
    missing = _evaluate(client, "no-such-recording", FULL)
    assert missing.status_code == 404
    assert _evaluate(client, made.recording_id, FULL, user="1001").status_code == 403


def test_lists_trend_and_one_dispute(
    client: TestClient, ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    mine = make_call(agent="1001")
    theirs = make_call(agent="1002")
    first = _evaluate(client, mine.recording_id, FULL).json()
    second = _evaluate(client, mine.recording_id, {**FULL, "accuracy": 0}).json()
    other = _evaluate(client, theirs.recording_id, FULL).json()
    # the first evaluation happened two weeks ago
    with ctx.sessions() as session, session.begin():
        session.execute(
            update(Evaluation)
            .where(Evaluation.id == first["id"])
            .values(created_at=datetime.now(UTC) - timedelta(weeks=2))
        )

    def ids(user: str, **params: str) -> list[int]:
        response = client.get("/api/v1/qa/evaluations", params=params, headers=auth(client, user))
        assert response.status_code == 200, response.text
        return [row["id"] for row in response.json()]

    assert ids("qa1", agent="1001") == [second["id"], first["id"]]
    assert ids("lead1") == [other["id"], second["id"], first["id"]]
    assert ids("1001") == [second["id"], first["id"]]
    assert ids("1002") == [other["id"]]
    denied = client.get(
        "/api/v1/qa/evaluations", params={"agent": "1002"}, headers=auth(client, "1001")
    )
    assert denied.status_code == 403
    assert client.get("/api/v1/qa/evaluations", headers=auth(client, "eng1")).status_code == 403
    assert (
        client.get(
            f"/api/v1/qa/evaluations/{other['id']}", headers=auth(client, "1001")
        ).status_code
        == 404
    )

    trend = client.get(
        "/api/v1/qa/trend", params={"agent": "1001", "weeks": 3}, headers=auth(client, "qa1")
    ).json()
    assert trend["agent"] == "1001"
    assert [(w["count"], w["average"]) for w in trend["weeks"]] == [
        (1, 100.0),
        (0, None),
        (1, 80.0),
    ]
    own = client.get("/api/v1/qa/trend", params={"weeks": 3}, headers=auth(client, "1001")).json()
    assert own == trend

    url = f"/api/v1/qa/evaluations/{second['id']}/dispute"
    assert client.post(url, json={"reason": "x"}, headers=auth(client, "qa1")).status_code == 403
    assert client.post(url, json={"reason": "x"}, headers=auth(client, "1002")).status_code == 404
    disputed = client.post(url, json={"reason": "客户已确认答复正确"}, headers=auth(client, "1001"))
    assert disputed.status_code == 200, disputed.text
    assert disputed.json()["dispute_reason"] == "客户已确认答复正确"
    again = client.post(url, json={"reason": "再次申诉"}, headers=auth(client, "1001"))
    assert again.status_code == 409
    assert again.json()["error_id"] == "evaluations.already-disputed"
    found = client.get(
        "/api/v1/recordings", params={"qa_status": "disputed"}, headers=auth(client, "qa1")
    ).json()["items"]
    assert [item["id"] for item in found] == [mine.recording_id]


def test_weekly_sample_is_reproducible_and_follows_the_rules(
    client: TestClient, make_call: Callable[..., MadeCall]
) -> None:
    # ISO week 2026-W45: Monday 2 November 2026 (Asia/Shanghai)
    monday = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    long_calls: dict[str, set[str]] = {"1001": set(), "1002": set()}
    for day in range(6):
        for agent in ("1001", "1002"):
            made = make_call(
                agent=agent,
                started=monday + timedelta(days=day, minutes=len(long_calls[agent])),
                tone_seconds=0.5,
                silence_seconds=40,
            )
            long_calls[agent].add(made.recording_id)
    short = make_call(agent="1001", started=monday + timedelta(hours=3), silence_seconds=5)
    next_week = make_call(agent="1001", started=monday + timedelta(days=7), silence_seconds=40)
    headers = auth(client, "qa1")

    def sample(week: str, per_agent: int) -> dict[str, Any]:
        response = client.get(
            "/api/v1/qa/sample", params={"week": week, "per_agent": per_agent}, headers=headers
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    first = sample("2026-W45", 2)
    assert first["min_answered_seconds"] == 30
    chosen = {row["agent"]: [item["id"] for item in row["recordings"]] for row in first["agents"]}
    assert set(chosen) == {"1001", "1002"}
    for agent, ids in chosen.items():
        assert len(ids) == 2
        assert set(ids) <= long_calls[agent]
        assert short.recording_id not in ids and next_week.recording_id not in ids
    assert {row["agent"]: row["candidates"] for row in first["agents"]} == {"1001": 6, "1002": 6}
    assert sample("2026-W45", 2) == first  # the same week gives the same sample
    everything = sample("2026-W45", 50)
    assert {row["agent"]: len(row["recordings"]) for row in everything["agents"]} == {
        "1001": 6,
        "1002": 6,
    }
    assert [row["agent"] for row in sample("2026-W46", 5)["agents"]] == ["1001"]
    bad = client.get("/api/v1/qa/sample", params={"week": "2026-W60"}, headers=headers)
    assert bad.status_code == 422 and "week" in bad.json()["message"]
    denied = client.get(
        "/api/v1/qa/sample", params={"week": "2026-W45"}, headers=auth(client, "1001")
    )
    assert denied.status_code == 403
