"""A menu changed through the config API reaches a running engine (real slots, SIPp callers):
the caller already in the menu finishes the one they started, the next caller hears the new
prompt (rendered before the switch) and walks the new options; a rollback brings the old
menu back, also to the slot that carried the first caller during the change."""

from __future__ import annotations

import copy
import os
import shutil
import tomllib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from callcenter.testkit.scenarios import caller_scenario
from callcenter.testkit.sipp import finished, sipp
from config.settings import Settings
from tests.conftest import TEST_REDIS_URL, auth
from tests.engine.conftest import EngineProcess, call_events, call_of, wait_for

pytestmark = [pytest.mark.sip, pytest.mark.usefixtures("no_sipp_left")]


@pytest.fixture
def settings(tmp_path: Path, seeded_sqlite_template: Path, engine_config_dir: Path) -> Settings:
    """The API reads the engine's configuration directory: a rollback to version 0 is the
    engine's own menu file."""
    shutil.copy(seeded_sqlite_template, tmp_path / "callcenter.db")
    return Settings(
        environment="test",
        state_dir=tmp_path,
        redis_url=TEST_REDIS_URL,
        config_dir=engine_config_dir,
    )


def first(client: redis.Redis, caller: str, type_: str) -> dict[str, Any] | None:
    call = call_of(client, caller)
    found = [e.data for e in call_events(client, call)] if call else []
    types = [e.type for e in call_events(client, call)] if call else []
    return found[types.index(type_)] if type_ in types else None


def slot_generations(engine: EngineProcess) -> dict[str, str]:
    """The configuration generation each slot runs its next call with."""
    return {
        k.removeprefix("config:"): v for k, v in engine.pool().items() if k.startswith("config:")
    }


def test_menu_changed_while_a_caller_is_in_it(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    client: TestClient,
    engine_config_dir: Path,
    tmp_path: Path,
) -> None:
    engine = start_engine(lines=2, spares=2)
    slot0, slot1 = sorted(slot_generations(engine))
    admin = auth(client, "admin")
    menu = tomllib.loads((engine_config_dir / "menu.toml").read_text(encoding="utf-8"))
    changed = copy.deepcopy(menu)
    changed["nodes"]["main"]["prompt"] = {"text": "节日热线，人工服务请按1。"}
    changed["nodes"]["main"]["options"]["1"] = "to_agent"

    # A is in the main menu when the new version is stored; A presses 1 after the switch
    old_caller = caller_scenario(
        tmp_path / "old.xml",
        [("pause", 3500), ("dtmf", "1"), ("pause", 900), ("dtmf", "#"), ("pause", 1200)],
        caller="13800000071",
    )
    run_a = sipp(old_caller, "127.0.0.1:16100", local_port=16511, media_port=46110, cwd=tmp_path)
    entered_a = wait_for(
        lambda: first(redis_client, "13800000071", "menu_entered"), 10, "A to enter the menu"
    )
    stored = client.put("/api/v1/config/menu", json=changed, headers=admin)
    assert stored.status_code == 201, stored.text
    assert any(line.startswith("engine: new calls") for line in stored.json()["applied_live"])
    # the idle slot takes it; the slot carrying A keeps A's generation while A is in the menu
    wait_for(lambda: slot_generations(engine) == {slot0: "0", slot1: "1"}, 10, "generation 1")
    assert engine.pool()["config_generation"] == "1"
    assert first(redis_client, "13800000071", "menu_chosen") is None  # A still choosing
    assert engine.pool()["config_versions"] == '{"menu": 1}'

    new_caller = caller_scenario(
        tmp_path / "new.xml", [("pause", 600), ("dtmf", "1"), ("pause", 900)], caller="13800000072"
    )
    run_b = sipp(new_caller, "127.0.0.1:16101", local_port=16512, media_port=46120, cwd=tmp_path)
    finished(run_b, 30)
    finished(run_a, 30)

    # A finished the menu A started: the old prompt, and 1 still meant the repair line
    chosen_a = first(redis_client, "13800000071", "menu_chosen")
    assert chosen_a == {"digit": "1", "target": "repair_room"}
    # B heard the new prompt, rendered before the switch, and 1 now means an agent
    entered_b = first(redis_client, "13800000072", "menu_entered")
    assert entered_b is not None and entered_a["node"] == entered_b["node"] == "main"
    assert entered_b["prompt_files"] != entered_a["prompt_files"]
    new_prompt = engine.settings.state_dir / "prompts" / entered_b["prompt_files"][0]
    arrived_b = datetime.fromisoformat(str(entered_b["prompt_started_at"])).timestamp()
    assert os.stat(new_prompt).st_mtime < arrived_b
    assert first(redis_client, "13800000072", "menu_chosen") == {"digit": "1", "target": "to_agent"}
    # A's call over, A's slot takes the new generation too
    wait_for(lambda: slot_generations(engine) == {slot0: "1", slot1: "1"}, 10, "slot 0 on 1")

    # rollback to the file: the old menu again, on the slot that carried A
    back = client.post("/api/v1/config/menu/versions/0/rollback", headers=admin)
    assert back.status_code == 201, back.text
    wait_for(lambda: slot_generations(engine) == {slot0: "2", slot1: "2"}, 10, "generation 2")
    rolled = caller_scenario(
        tmp_path / "rolled.xml",
        [("pause", 600), ("dtmf", "1"), ("pause", 600)],
        caller="13800000073",
    )
    finished(sipp(rolled, "127.0.0.1:16100", local_port=16513, media_port=46130, cwd=tmp_path), 30)
    entered_c = first(redis_client, "13800000073", "menu_entered")
    assert entered_c is not None and entered_c["prompt_files"] == entered_a["prompt_files"]
    assert first(redis_client, "13800000073", "menu_chosen") == {
        "digit": "1",
        "target": "repair_room",
    }
