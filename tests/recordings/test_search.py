"""GET /api/v1/recordings: every filter, paging, and exactly what each role may find."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from callcenter.context import AppContext
from recordings.models import Recording
from tests.conftest import auth
from tests.recordings.conftest import MadeCall

BASE = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _ids(client: TestClient, user: str, **params: object) -> list[str]:
    response = client.get("/api/v1/recordings", params=params, headers=auth(client, user))
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _world(make_call: Callable[..., MadeCall]) -> dict[str, MadeCall]:
    return {
        "a": make_call(agent="1001", caller="13800138000", queue="repair", started=BASE),
        "b": make_call(
            agent="1002",
            caller="13900139000",
            queue="complaint",
            started=BASE + timedelta(hours=1),
            tone_seconds=30,
            ticket="GD20261201-0007",
        ),
        "c": make_call(
            agent="1001", caller="13900139000", queue="fees", started=BASE + timedelta(hours=2)
        ),
    }


def test_item_shape_and_newest_first(
    client: TestClient, make_call: Callable[..., MadeCall]
) -> None:
    calls = _world(make_call)
    response = client.get("/api/v1/recordings", headers=auth(client, "qa1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [i["id"] for i in body["items"]] == [calls[k].recording_id for k in "cba"]
    item = body["items"][1]
    assert item["call_id"] == calls["b"].call_id
    assert item["agent"] == "1002"
    assert item["caller"] == "13900139000"
    assert item["queue"] == "complaint"
    assert item["ticket"] == "GD20261201-0007"
    assert item["duration_s"] == 31.0
    assert datetime.fromisoformat(item["started_at"]) == BASE + timedelta(hours=1)
    assert body["items"][0]["ticket"] is None
    assert body["has_more"] is False


def test_each_filter(client: TestClient, make_call: Callable[..., MadeCall]) -> None:
    c = _world(make_call)
    a, b, cc = c["a"].recording_id, c["b"].recording_id, c["c"].recording_id
    assert _ids(client, "lead1", agent="1001") == [cc, a]
    assert _ids(client, "lead1", agent="1012") == []
    assert _ids(client, "lead1", caller="13900139000") == [cc, b]
    assert _ids(client, "lead1", queue="complaint") == [b]
    assert _ids(client, "lead1", ticket="GD20261201-0007") == [b]
    assert _ids(client, "lead1", ticket="GD20990101-0001") == []
    assert _ids(client, "lead1", since=(BASE + timedelta(minutes=30)).isoformat()) == [cc, b]
    assert _ids(client, "lead1", until=(BASE + timedelta(hours=1)).isoformat()) == [a]
    # without an offset a time is the center's local time (Asia/Shanghai, UTC+8)
    assert _ids(client, "lead1", since="2026-12-01T10:30:00") == [cc, b]
    assert _ids(client, "lead1", min_duration=10) == [b]
    assert _ids(client, "lead1", queue="fees", agent="1001", caller="13900139000") == [cc]


def test_qa_status_filter(
    client: TestClient, ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    c = _world(make_call)
    with ctx.sessions() as session, session.begin():
        session.execute(
            update(Recording)
            .where(Recording.id == c["b"].recording_id)
            .values(qa_status="disputed")
        )
    assert _ids(client, "qa1", qa_status="disputed") == [c["b"].recording_id]
    assert len(_ids(client, "qa1", qa_status="unscored")) == 2
    bad = client.get(
        "/api/v1/recordings", params={"qa_status": "great"}, headers=auth(client, "qa1")
    )
    assert bad.status_code == 422
    assert "qa_status" in bad.json()["message"]


def test_paging(client: TestClient, make_call: Callable[..., MadeCall]) -> None:
    made = [make_call(started=BASE + timedelta(minutes=i)) for i in range(5)]
    newest_first = [m.recording_id for m in reversed(made)]
    headers = auth(client, "lead1")
    first = client.get("/api/v1/recordings", params={"limit": 2}, headers=headers).json()
    assert [i["id"] for i in first["items"]] == newest_first[:2]
    assert first["has_more"] is True and first["next_offset"] == 2
    last = client.get(
        "/api/v1/recordings", params={"limit": 2, "offset": 4}, headers=headers
    ).json()
    assert [i["id"] for i in last["items"]] == newest_first[4:]
    assert last["has_more"] is False and last["next_offset"] is None


def test_roles_see_exactly_what_they_may(
    client: TestClient, make_call: Callable[..., MadeCall]
) -> None:
    c = _world(make_call)
    everything = {m.recording_id for m in c.values()}
    assert set(_ids(client, "lead1")) == everything
    assert set(_ids(client, "qa1")) == everything
    assert set(_ids(client, "admin")) == everything
    assert set(_ids(client, "1001")) == {c["a"].recording_id, c["c"].recording_id}
    assert _ids(client, "1002") == [c["b"].recording_id]
    assert _ids(client, "1003") == []
    # an agent naming a colleague still finds only their own (here: nothing)
    assert _ids(client, "1001", agent="1002") == []
    for staff in ("eng1", "fin1"):
        denied = client.get("/api/v1/recordings", headers=auth(client, staff))
        assert denied.status_code == 403
        assert denied.json()["error_id"] == "recordings.forbidden"


def test_deleted_recordings_are_not_found(
    client: TestClient, ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    c = _world(make_call)
    with ctx.sessions() as session, session.begin():
        session.execute(
            update(Recording)
            .where(Recording.id == c["a"].recording_id)
            .values(deleted_at=datetime.now(UTC))
        )
    assert c["a"].recording_id not in _ids(client, "lead1")
