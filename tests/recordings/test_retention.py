"""Retention per queue, legal hold, erasure by number: exactly the right files go, each
deletion is audited, and what a caller keyed in is gone from call records and Redis."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.context import AppContext
from callcenter.models import AuditEntry
from cti.models import Call, CallEvent
from recordings import jobs
from recordings.models import Recording
from recordings.retention import apply_retention
from tests.conftest import auth
from tests.recordings.conftest import MadeCall

NOW = datetime.now(UTC)


def _files(ctx: AppContext) -> set[str]:
    root = Path(ctx.settings.recordings_dir)
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _key(ctx: AppContext, made: MadeCall, suffix: str = ".wav") -> str:
    return made.path.relative_to(ctx.settings.recordings_dir).with_suffix(suffix).as_posix()


def _audited(ctx: AppContext, action: str) -> list[str]:
    with ctx.sessions() as session:
        return list(
            session.scalars(
                select(AuditEntry.object_id)
                .where(AuditEntry.action == action)
                .order_by(AuditEntry.id)
            )
        )


def test_retention_deletes_exactly_the_expired_files(
    client: TestClient, ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    # general: 365 days (the file's default); complaint: 730 days (its own)
    old_general = make_call(queue="general", started=NOW - timedelta(days=400))
    young_general = make_call(queue="general", started=NOW - timedelta(days=300))
    old_complaint = make_call(queue="complaint", started=NOW - timedelta(days=400))
    ancient_complaint = make_call(queue="complaint", started=NOW - timedelta(days=800))
    no_queue = make_call(queue=None, started=NOW - timedelta(days=366))
    held = make_call(queue="general", started=NOW - timedelta(days=500))
    for made in (old_general, young_general, ancient_complaint):
        jobs.process_recording(made.recording_id)
    hold = client.put(
        f"/api/v1/recordings/{held.recording_id}/legal-hold",
        json={"hold": True, "reason": "诉讼保全"},
        headers=auth(client, "lead1"),
    )
    assert hold.status_code == 200, hold.text
    assert (
        client.put(
            f"/api/v1/recordings/{held.recording_id}/legal-hold",
            json={"hold": False, "reason": "x"},
            headers=auth(client, "1001"),
        ).status_code
        == 403
    )
    before = _files(ctx)
    deleted = apply_retention(ctx, actor="retention")
    expected = {old_general.recording_id, ancient_complaint.recording_id, no_queue.recording_id}
    assert set(deleted) == expected
    gone = {
        _key(ctx, old_general),
        _key(ctx, old_general, ".opus"),
        _key(ctx, ancient_complaint),
        _key(ctx, ancient_complaint, ".opus"),
        _key(ctx, no_queue),
    }
    assert before - _files(ctx) == gone
    assert _files(ctx) == before - gone
    assert young_general.path.exists() and old_complaint.path.exists() and held.path.exists()
    assert set(_audited(ctx, "recording.deleted")) == expected
    with ctx.sessions() as session:  # closed here: left open it held a lock the teardown waits on
        actions = set(session.scalars(select(AuditEntry.action)))
    assert "recording.legal_hold" in actions
    with ctx.sessions() as session:
        rows = {r.id: r.deleted_at for r in session.scalars(select(Recording))}
    assert {rid for rid, at in rows.items() if at is not None} == expected
    assert apply_retention(ctx, actor="retention") == []  # nothing twice


def test_erasure_by_number(
    client: TestClient, ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    number = "13700137000"
    first = make_call(caller=number, collected={"room": "1201"})
    second = make_call(caller=number)
    held = make_call(caller=number)
    other = make_call(caller="13800138000", collected={"room": "0808"})
    jobs.process_recording(first.recording_id)
    with ctx.sessions() as session, session.begin():
        session.get(Recording, held.recording_id).legal_hold = True  # type: ignore[union-attr]
    for made in (first, second, other):
        ctx.redis.set(ctx.keys.routing(f"call:{made.call_id}:pop"), '{"name": "张伟"}')
    before = _files(ctx)

    denied = client.post(
        "/api/v1/recordings/erasure",
        json={"number": number, "reason": "客户要求删除"},
        headers=auth(client, "qa1"),
    )
    assert denied.status_code == 403
    bad = client.post(
        "/api/v1/recordings/erasure",
        json={"number": "abc", "reason": "x"},
        headers=auth(client, "admin"),
    )
    assert bad.status_code == 422 and "number" in bad.json()["message"]
    response = client.post(
        "/api/v1/recordings/erasure",
        json={"number": number, "reason": "客户要求删除"},
        headers=auth(client, "admin"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["recordings_deleted"]) == {first.recording_id, second.recording_id}
    assert body["recordings_held"] == [held.recording_id]
    assert body["screen_pops_deleted"] == 2
    assert number not in response.text

    gone = {_key(ctx, first), _key(ctx, first, ".opus"), _key(ctx, second)}
    assert before - _files(ctx) == gone
    assert held.path.exists() and other.path.exists()
    assert ctx.redis.exists(ctx.keys.routing(f"call:{other.call_id}:pop"))
    assert not ctx.redis.exists(ctx.keys.routing(f"call:{first.call_id}:pop"))
    with ctx.sessions() as session:
        call = session.get(Call, first.call_id)
        assert call is not None
        assert call.caller_number == "" and call.collected == {}
        assert all("digits" not in step for step in call.menu_path)
        timeline = session.scalars(select(CallEvent.data).where(CallEvent.call_id == first.call_id))
        assert "1201" not in str(list(timeline)) and number not in str(list(timeline))
        kept = session.get(Call, other.call_id)
        assert kept is not None and kept.collected == {"room": "0808"}
    assert set(_audited(ctx, "recording.erased")) == {first.recording_id, second.recording_id}
    assert set(_audited(ctx, "call.redacted")) == {first.call_id, second.call_id, held.call_id}
    assert set(_audited(ctx, "screen_pop.erased")) == {first.call_id, second.call_id}
    with ctx.sessions() as session:
        details = list(session.scalars(select(AuditEntry.details)))
    assert number not in str(details)
    found = client.get(
        "/api/v1/recordings", params={"caller": number}, headers=auth(client, "qa1")
    ).json()["items"]
    assert [item["id"] for item in found] == [held.recording_id]
