"""Reconciliation finds every disagreement between answered calls, rows, files and checksums,
lists them in the API, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from callcenter.context import AppContext
from callcenter.queues import queues
from recordings import jobs
from tests.conftest import auth
from tests.recordings.conftest import MadeCall, write_wav


def test_every_kind_of_mismatch_is_listed(
    client: TestClient, ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    headers = auth(client, "qa1")
    assert client.get("/api/v1/recordings/reconciliation", headers=headers).status_code == 404

    healthy = make_call()
    processed = make_call()
    jobs.process_recording(processed.recording_id)
    damaged = make_call()
    data = bytearray(damaged.path.read_bytes())
    data[-1] ^= 0x01
    damaged.path.write_bytes(bytes(data))
    vanished = make_call()
    vanished.path.unlink()
    unrecorded = make_call(record=False)
    abandoned = make_call(agent=None)  # not answered: no recording expected
    stray = Path(ctx.settings.recordings_dir) / "2026/01/01/stray.wav"
    write_wav(stray, 0.5, 0.0)
    opus = Path(ctx.settings.recordings_dir) / str(
        Path(processed.path).relative_to(ctx.settings.recordings_dir).with_suffix(".opus")
    )
    opus.unlink()  # the verified transcode went missing

    response = client.post("/api/v1/recordings/reconciliation", headers=headers)
    assert response.status_code == 200, response.text
    report = response.json()
    found = {(f["kind"], f["recording_id"] or f["call_id"] or f["key"]) for f in report["findings"]}
    assert found == {
        ("checksum-mismatch", damaged.recording_id),
        ("file-missing", vanished.recording_id),
        ("call-without-recording", unrecorded.call_id),
        ("file-without-row", "2026/01/01/stray.wav"),
        ("transcode-missing", processed.recording_id),
    }
    assert report["counts"]["checksum-mismatch"] == 1
    assert report["checked_recordings"] == 4
    assert healthy.recording_id not in str(report["findings"])
    assert abandoned.call_id not in str(report["findings"])
    # kept for the next reader; nothing was changed
    assert client.get("/api/v1/recordings/reconciliation", headers=headers).json() == report
    assert stray.exists() and damaged.path.read_bytes() == bytes(data)
    assert (
        client.get("/api/v1/recordings/reconciliation", headers=auth(client, "1001")).status_code
        == 403
    )


def test_a_clean_center_has_no_findings(
    client: TestClient, make_call: Callable[..., MadeCall]
) -> None:
    for _ in range(3):
        jobs.process_recording(make_call().recording_id)
    report = client.post("/api/v1/recordings/reconciliation", headers=auth(client, "lead1")).json()
    assert report["findings"] == []
    assert report["checked_files"] == 6  # three WAVs and their Opus transcodes


def test_periodic_scan_enqueues_unprocessed_and_reconciles_daily(
    ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    made = make_call()  # ended ten minutes ago, never post-processed
    fresh = make_call(started=datetime.now(UTC))  # just ended: the consumer's job is due
    report = jobs.scan(reschedule=False)
    assert report["enqueued"] == 1
    low = {q.name.rsplit(":", 1)[-1]: q for q in queues(ctx)}["low"]
    assert made.recording_id in low.job_ids[0] and fresh.recording_id not in str(low.job_ids)
    assert report["reconciliation"]["file-without-row"] == 0
    assert "retention_deleted" in report
    again = jobs.scan(reschedule=False)  # reconciliation and retention: once a day
    assert "reconciliation" not in again and "retention_deleted" not in again


def test_cli_commands_report_and_exit_codes(
    ctx: AppContext, make_call: Callable[..., MadeCall], capsys: pytest.CaptureFixture[str]
) -> None:
    from recordings.commands import run

    jobs.process_recording(make_call().recording_id)
    assert run("recordings-reconcile", ctx.settings) == 0
    assert '"file-without-row": 0' in capsys.readouterr().out
    stray = Path(ctx.settings.recordings_dir) / "2026/01/02/stray.wav"
    write_wav(stray, 0.2, 0.0)
    assert run("recordings-reconcile", ctx.settings) == 1
    assert "2026/01/02/stray.wav" in capsys.readouterr().out
    assert run("recordings-retention", ctx.settings) == 0
    assert "0 recording(s) deleted" in capsys.readouterr().out


def _reconciliation_alerts(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    wallboard = client.get("/api/v1/wallboard", headers=headers)
    assert wallboard.status_code == 200, wallboard.text
    return [a for a in wallboard.json()["alerts"] if a["kind"] == "recordings_reconciliation"]


def test_mismatches_show_on_the_wallboard_alerts_until_a_clean_run(
    client: TestClient, ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    lead = auth(client, "lead1")
    assert _reconciliation_alerts(client, lead) == []  # never reconciled: nothing to show
    make_call()
    vanished = make_call()
    kept = vanished.path.read_bytes()
    vanished.path.unlink()
    unrecorded = make_call(record=False)
    # the daily scan's run (the worker's), not only the API's
    assert jobs.scan(reschedule=False)["reconciliation"]["file-missing"] == 1
    (alert,) = _reconciliation_alerts(client, lead)
    assert alert["counts"] == {"file-missing": 1, "call-without-recording": 1}
    assert alert["value"] == 2 and alert["queue"] == "all"
    assert "录音文件缺失 1" in alert["zh-CN"] and "1 recording files missing" in alert["en"]
    # still there on the next snapshot (not a one-off push) ...
    assert _reconciliation_alerts(client, lead) == [alert]
    # ... until a run finds everything in order again
    vanished.path.write_bytes(kept)
    with ctx.sessions() as session, session.begin():
        from cti.models import Call

        call = session.get(Call, unrecorded.call_id)
        assert call is not None
        call.answered_at = None  # not answered after all: no recording expected
    client.post("/api/v1/recordings/reconciliation", headers=lead)
    assert _reconciliation_alerts(client, lead) == []
