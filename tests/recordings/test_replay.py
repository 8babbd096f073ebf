"""Replay links: byte-exact Range against the file, credentials-free, bound to one user and a
short life; tampered, expired or someone else's links refused; every play, download and
refusal audited."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.context import AppContext
from callcenter.models import AuditEntry
from recordings import links
from tests.conftest import auth
from tests.recordings.conftest import MadeCall


def _link(client: TestClient, user: str, recording_id: str, **body: object) -> dict[str, str]:
    response = client.post(
        f"/api/v1/recordings/{recording_id}/link", json=body or None, headers=auth(client, user)
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _audit(ctx: AppContext, recording_id: str) -> list[tuple[str, str, dict[str, object]]]:
    with ctx.sessions() as session:
        rows = session.execute(
            select(AuditEntry.action, AuditEntry.actor, AuditEntry.details)
            .where(AuditEntry.object_type == "recording", AuditEntry.object_id == recording_id)
            .order_by(AuditEntry.id)
        ).all()
    return [(a, b, dict(c)) for a, b, c in rows]


def test_link_plays_without_credentials_and_ranges_are_byte_exact(
    client: TestClient, ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    made = make_call(agent="1001", tone_seconds=3)
    data = made.path.read_bytes()
    link = _link(client, "qa1", made.recording_id)
    assert link["format"] == "wav"  # not post-processed yet
    assert link["url"].startswith("/api/v1/recordings/play/")

    whole = client.get(link["url"])
    assert whole.status_code == 200
    assert whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "audio/wav"

    for header, start, end in [
        ("bytes=0-0", 0, 0),
        ("bytes=44-1043", 44, 1043),
        (f"bytes={len(data) - 10}-", len(data) - 10, len(data) - 1),
        ("bytes=-100", len(data) - 100, len(data) - 1),
        (f"bytes=100-{len(data) + 5000}", 100, len(data) - 1),
    ]:
        part = client.get(link["url"], headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == data[start : end + 1], header
        assert part.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
        assert part.headers["content-length"] == str(end - start + 1)

    for header in (f"bytes={len(data)}-", "bytes=9-3", "bytes=0-1,5-9", "lines=1-2"):
        refused = client.get(link["url"], headers={"Range": header})
        assert refused.status_code == 416, header
        assert refused.json()["error_id"] == "recordings.range-not-satisfiable"

    plays = [entry for entry in _audit(ctx, made.recording_id) if entry[0] == "recording.play"]
    assert len(plays) == 1 + 5
    assert all(actor == "qa1" for _, actor, _ in plays)
    assert plays[2][2]["range"] == [44, 1043]
    assert [play[2]["ranged"] for play in plays] == [False] + [True] * 5


def _tamper(url: str) -> list[str]:
    token = url.rsplit("/", 1)[1]
    body, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    other_body = links._b64(links._unb64(body).replace(b'"u":', b'"u":1'))
    return [f"{body}.{flipped}", f"{other_body}.{signature}", body, "garbage"]


def test_tampered_expired_and_other_users_links_are_refused_and_audited(
    client: TestClient, ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    made = make_call(agent="1001")
    link = _link(client, "1001", made.recording_id)
    for token in _tamper(link["url"]):
        refused = client.get(f"/api/v1/recordings/play/{token}")
        assert refused.status_code == 403, token
        assert refused.json()["error_id"] == "recordings.link-refused"

    with ctx.sessions() as session:
        from callcenter.models import User

        user_id = session.scalar(select(User.id).where(User.username == "1001"))
    assert user_id is not None
    expired = links.sign(
        ctx.settings.secret_key,
        links.LinkClaims(made.recording_id, user_id, "wav", int(time.time()) - 1),
    )
    answer = client.get(f"/api/v1/recordings/play/{expired}")
    assert answer.status_code == 403
    assert answer.json()["details"]["reason"] == "expired"

    # the owner's link presented with another user's credentials
    other = client.get(link["url"], headers=auth(client, "1002"))
    assert other.status_code == 403
    assert other.json()["details"]["reason"] == "other-user"
    # ...and with the owner's own credentials it plays
    assert client.get(link["url"], headers=auth(client, "1001")).status_code == 200

    reasons = [
        details.get("reason")
        for action, _actor, details in _audit(ctx, made.recording_id)
        if action == "recording.denied"
    ]
    assert reasons.count("bad-signature") >= 2
    assert "expired" in reasons
    assert "recordings.link-refused" in reasons  # the other user's attempt


def test_roles_for_links_and_downloads(
    client: TestClient, ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    mine = make_call(agent="1001")
    theirs = make_call(agent="1002")
    # an agent cannot get a link to a colleague's call (it does not exist for them)
    response = client.post(
        f"/api/v1/recordings/{theirs.recording_id}/link", headers=auth(client, "1001")
    )
    assert response.status_code == 404
    response = client.post(
        f"/api/v1/recordings/{mine.recording_id}/link", headers=auth(client, "eng1")
    )
    assert response.status_code == 403
    # an agent plays their own call but may not download it
    agent_link = _link(client, "1001", mine.recording_id)
    assert agent_link["download_url"] is None
    assert client.get(agent_link["url"]).status_code == 200
    denied = client.get(agent_link["url"] + "?download=1")
    assert denied.status_code == 403
    # QA downloads: an attachment, audited as a download
    qa_link = _link(client, "qa1", mine.recording_id)
    download = client.get(qa_link["download_url"])
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.content == mine.path.read_bytes()
    actions = [(action, actor) for action, actor, _ in _audit(ctx, mine.recording_id)]
    assert ("recording.play", "1001") in actions
    assert ("recording.download", "qa1") in actions
    assert ("recording.denied", str(_user_id(ctx, "1001"))) in actions
    assert any(a == ("recording.denied", "1001") for a in _audit_actions(ctx, theirs))


def _user_id(ctx: AppContext, username: str) -> int:
    from callcenter.models import User

    with ctx.sessions() as session:
        found = session.scalar(select(User.id).where(User.username == username))
    assert found is not None
    return found


def _audit_actions(ctx: AppContext, made: MadeCall) -> list[tuple[str, str]]:
    return [(action, actor) for action, actor, _ in _audit(ctx, made.recording_id)]


@pytest.mark.parametrize("user", ["qa1", "1001"])
def test_authenticated_audio_route_still_serves_ranges(
    client: TestClient, ctx: AppContext, make_call: Callable[..., MadeCall], user: str
) -> None:
    made = make_call(agent="1001")
    data = made.path.read_bytes()
    refused = client.get(
        f"/api/v1/recordings/{made.recording_id}/audio", headers=auth(client, "1002")
    )
    assert refused.status_code == 404
    assert ("recording.denied", "1002") in _audit_actions(ctx, made)
    part = client.get(
        f"/api/v1/recordings/{made.recording_id}/audio",
        headers={**auth(client, user), "Range": "bytes=10-19"},
    )
    assert part.status_code == 206
    assert part.content == data[10:20]
