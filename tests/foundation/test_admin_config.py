"""The declarative files through the API: JSON of the TOML's structure, validated exactly as
check-config validates, stored as versions with who/when/diff, rolled back, audited."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from callcenter.context import AppContext
from tests.conftest import auth

ROOT = Path(__file__).resolve().parents[2]

BAD_QUEUES_TOML = """\
short_abandon_seconds = 5

[queues.general]
name = { zh-CN = "综合服务", en = "General" }
strategy = "fastest_first"
ring_timeout_seconds = -3

[queues.repair]
name = { zh-CN = "报修" }
overflow = { after_seconds = 90, to = "nowhere" }
colour = "red"
"""


def queues_document(ctx: AppContext) -> dict[str, Any]:
    return tomllib.loads((ctx.settings.config_dir / "queues.toml").read_text(encoding="utf-8"))


def test_get_put_versions_and_rollback(client: TestClient, ctx: AppContext) -> None:
    admin = auth(client, "admin")
    original = client.get("/api/v1/config/queues", headers=admin).json()
    assert original["version"] == 0 and original["document"] == queues_document(ctx)

    slower = copy.deepcopy(original["document"])
    slower["queues"]["general"]["ring_timeout_seconds"] = 25
    stored = client.put("/api/v1/config/queues", json=slower, headers=admin, params={"note": "试"})
    assert stored.status_code == 201, stored.text
    assert stored.json()["version"] == 1 and stored.json()["author"] == "admin"
    assert stored.json()["diff"] == [
        {"key": "queues.general.ring_timeout_seconds", "before": 15, "after": 25}
    ]
    assert stored.json()["applied_live"] == [
        "this API process",
        "queue routing settings of every router (next offer)",
        "API, router and worker processes (reload notice)",
        "engine: new calls, once the changed prompts are rendered (calls in progress keep the "
        "version they started with)",
    ]
    assert stored.json()["restart_needed"] == []
    current = client.get("/api/v1/config/queues", headers=admin).json()
    assert current["version"] == 1 and current["document"] == slower
    # The same document again stores nothing.
    again = client.put("/api/v1/config/queues", json=slower, headers=admin)
    assert again.status_code == 200 and again.json()["version"] == 1

    faster = copy.deepcopy(slower)
    faster["queues"]["general"]["ring_timeout_seconds"] = 10
    assert client.put("/api/v1/config/queues", json=faster, headers=admin).json()["version"] == 2

    back = client.post("/api/v1/config/queues/versions/1/rollback", headers=admin)
    assert back.status_code == 201 and back.json()["version"] == 3
    assert back.json()["rollback_of"] == 1
    assert client.get("/api/v1/config/queues", headers=admin).json()["document"] == slower
    second = client.get("/api/v1/config/queues/versions/2", headers=admin).json()
    assert second["document"] == faster
    to_file = client.post("/api/v1/config/queues/versions/0/rollback", headers=admin).json()
    assert to_file["version"] == 4
    assert client.get("/api/v1/config/queues", headers=admin).json()["document"] == (
        queues_document(ctx)
    )
    listed = client.get("/api/v1/config/queues/versions", headers=admin).json()
    assert [v["version"] for v in listed] == [4, 3, 2, 1]
    assert listed[-1]["note"] == "试"

    log = client.get(
        "/api/v1/audit", params={"object_type": "config", "object_id": "queues"}, headers=admin
    ).json()
    assert [e["action"] for e in reversed(log)] == [
        "config.update", "config.update", "config.rollback", "config.rollback",
    ]  # fmt: skip
    assert log[-1]["details"]["diff"][0]["after"] == 25


def test_a_bad_document_lists_every_problem_as_check_config_does_and_stores_nothing(
    client: TestClient, ctx: AppContext, tmp_path: Path
) -> None:
    admin = auth(client, "admin")
    refused = client.put(
        "/api/v1/config/queues", json=tomllib.loads(BAD_QUEUES_TOML), headers=admin
    )
    assert refused.status_code == 422, refused.text
    problems = refused.json()["details"]["problems"]
    assert len(problems) >= 4

    # check-config on a directory holding the same document as TOML prints the same lines.
    directory = tmp_path / "config"
    shutil.copytree(ctx.settings.config_dir, directory)
    (directory / "queues.toml").write_text(BAD_QUEUES_TOML, encoding="utf-8")
    checked = subprocess.run(
        [sys.executable, "-m", "callcenter.cli", "check-config"],
        cwd=ROOT, env={**os.environ, "CALLCENTER_CONFIG_DIR": str(directory)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    printed = [
        line.strip().replace(str(directory), str(ctx.settings.config_dir))
        for line in checked.stderr.splitlines()[1:]
    ]
    assert problems == printed

    # The same problems with their kind and values, for pages in the reader's language.
    items = refused.json()["details"]["items"]
    assert [
        f"{ctx.settings.config_dir / i['file']}: {i['key']}: {i['message']}" for i in items
    ] == (problems)
    by_key = {i["key"]: (i["type"], i["context"]) for i in items}
    assert by_key["queues.general.ring_timeout_seconds"] == (
        "greater_than_equal",
        {"ge": 3, "input": "-3"},
    )
    assert by_key["queues.general.strategy"][0] == "literal_error"
    assert "'round_robin'" in by_key["queues.general.strategy"][1]["expected"]
    assert by_key["queues.repair.colour"] == ("extra_forbidden", {})
    assert by_key["queues.repair.name.en"] == ("missing", {})

    assert client.get("/api/v1/config/queues/versions", headers=admin).json() == []
    assert client.get("/api/v1/config/queues", headers=admin).json()["version"] == 0


def test_a_document_is_checked_against_the_other_files(client: TestClient, ctx: AppContext) -> None:
    admin = auth(client, "admin")
    menu = client.get("/api/v1/config/menu", headers=admin).json()["document"]
    enqueue = next(name for name, n in menu["nodes"].items() if n["kind"] == "enqueue")
    menu["nodes"][enqueue]["queue"] = "parking"
    refused = client.put("/api/v1/config/menu", json=menu, headers=admin)
    assert refused.status_code == 422
    menu_file = ctx.settings.config_dir / "menu.toml"
    assert refused.json()["details"]["problems"] == [
        f"{menu_file}: nodes.{enqueue}.queue: queue 'parking' is not defined in "
        f"{ctx.settings.config_dir / 'queues.toml'}"
    ]
    assert refused.json()["details"]["items"] == [
        {
            "file": "menu.toml",
            "key": f"nodes.{enqueue}.queue",
            "type": "undefined_queue",
            "context": {"value": "parking", "file": "queues.toml"},
            "message": "queue 'parking' is not defined in "
            f"{ctx.settings.config_dir / 'queues.toml'}",
        }
    ]
    # Once a stored queues version defines the queue, the menu may use it.
    queues = client.get("/api/v1/config/queues", headers=admin).json()["document"]
    queues["queues"]["parking"] = {"name": {"zh-CN": "停车", "en": "Parking"}}
    assert client.put("/api/v1/config/queues", json=queues, headers=admin).status_code == 201
    assert client.put("/api/v1/config/menu", json=menu, headers=admin).status_code == 201
    # ... and the queue can no longer be removed while the stored menu uses it.
    del queues["queues"]["parking"]
    assert client.put("/api/v1/config/queues", json=queues, headers=admin).status_code == 422


def test_a_telephony_version_waits_for_no_edge_restart(client: TestClient) -> None:
    admin = auth(client, "admin")
    telephony = client.get("/api/v1/config/telephony", headers=admin).json()["document"]
    telephony["sip_domain"] = "hotline.example"
    telephony["dids"].append({"number": "4008009999"})
    stored = client.put("/api/v1/config/telephony", json=telephony, headers=admin)
    assert stored.status_code == 201, stored.text
    assert (
        "SIP edge: DIDs, trunks, outbound trunk, dial plan, domain (reloaded at once)"
        in stored.json()["applied_live"]
    )
    assert stored.json()["restart_needed"] == []  # the domain too is live at the edge


def test_only_admins_and_only_known_files(client: TestClient) -> None:
    lead = auth(client, "lead1")
    assert client.get("/api/v1/config/queues", headers=lead).status_code == 403
    assert client.put("/api/v1/config/queues", json={}, headers=lead).status_code == 403
    admin = auth(client, "admin")
    assert client.get("/api/v1/config/secrets", headers=admin).status_code == 404
    for name in ("menu", "queues", "shifts", "dispatch", "callbacks", "telephony", "webhooks"):
        assert client.get(f"/api/v1/config/{name}", headers=admin).status_code == 200


def test_a_process_started_after_a_version_was_stored_uses_it(
    client: TestClient, ctx: AppContext
) -> None:
    from callcenter.context import build_context

    admin = auth(client, "admin")
    shifts = client.get("/api/v1/config/shifts", headers=admin).json()["document"]
    shifts["answer_rate_target"] = 0.85
    stored = client.put("/api/v1/config/shifts", json=shifts, headers=admin)
    assert stored.json()["applied_live"] == [
        "this API process",
        "API, router and worker processes (reload notice)",
    ]
    assert ctx.config.shifts.answer_rate_target == 0.85
    restarted = build_context(ctx.settings)
    try:
        assert restarted.config.shifts.answer_rate_target == 0.85
        assert restarted.config.queues == ctx.config.queues  # files without versions: as is
    finally:
        restarted.close()
    client.post("/api/v1/config/shifts/versions/0/rollback", headers=admin)
    restarted = build_context(ctx.settings)
    try:
        assert restarted.config.shifts.answer_rate_target == 0.9
    finally:
        restarted.close()


def test_another_running_process_takes_a_stored_version_without_restarting(
    client: TestClient, ctx: AppContext
) -> None:
    """A second context with its watcher stands for a router or worker process (cli.py starts
    the same watcher there): a real Redis notice, its own connection and thread."""
    import time

    from callcenter.config_watch import ConfigWatcher
    from callcenter.context import build_context
    from cti.services import routing_for

    other = build_context(ctx.settings)
    routing = routing_for(other)
    watcher = ConfigWatcher(other).start()
    try:
        deadline = time.monotonic() + 10
        while watcher.reloads == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert watcher.reloads >= 1, "the watcher never subscribed"
        assert other.config.queues.queues["repair"].ring_timeout_seconds == 15

        admin = auth(client, "admin")
        queues = client.get("/api/v1/config/queues", headers=admin).json()["document"]
        queues["queues"]["repair"]["ring_timeout_seconds"] = 30
        queues["queues"]["repair"]["announce_every_seconds"] = 45
        started = time.monotonic()
        assert client.put("/api/v1/config/queues", json=queues, headers=admin).status_code == 201
        while time.monotonic() < started + 5:
            if other.config.queues.queues["repair"].announce_every_seconds == 45:
                break
            time.sleep(0.01)
        took = time.monotonic() - started
        assert other.config.queues.queues["repair"].announce_every_seconds == 45
        assert routing.config.queues.queues["repair"].ring_timeout_seconds == 30
        print(f"another process took the new version {took * 1000:.0f} ms after the PUT")
    finally:
        watcher.stop()
        other.close()


def test_versions_and_the_start_overlay_on_sqlite_and_postgresql(
    database_url: str, tmp_path: Path, redis_client: object
) -> None:
    from admin import config_versions
    from callcenter.context import build_context
    from callcenter.db import transaction
    from callcenter.migrate import upgrade
    from config.settings import Settings
    from tests.conftest import TEST_REDIS_URL

    upgrade(database_url)
    settings = Settings(
        environment="test", state_dir=tmp_path, database_url=database_url, redis_url=TEST_REDIS_URL
    )
    context = build_context(settings)
    try:
        with context.sessions() as session:
            _version, document = config_versions.current(session, context, name="queues")
        for timeout in (25, 35):
            document["queues"]["general"]["ring_timeout_seconds"] = timeout
            with transaction(context.sessions) as session:
                config_versions.store(
                    session, context, actor="t", name="queues", document=copy.deepcopy(document)
                )
        with transaction(context.sessions) as session:
            config_versions.rollback(session, context, actor="t", name="queues", version=1)
        restarted = build_context(settings)
        assert restarted.config.queues.queues["general"].ring_timeout_seconds == 25
        restarted.close()
        with context.sessions() as session:
            stored = config_versions.versions(session, name="queues")
        assert [v.version for v in stored] == [3, 2, 1]
    finally:
        context.close()


def test_every_config_problem_message_has_both_languages_with_the_same_values() -> None:
    import re

    from pages.config_messages import CONFIG_PROBLEM_MESSAGES

    for key, entry in CONFIG_PROBLEM_MESSAGES.items():
        assert set(entry) == {"zh-CN", "en"}, key
        names = {lang: set(re.findall(r"\{(\w+)\}", text)) for lang, text in entry.items()}
        assert names["zh-CN"] == names["en"], key
