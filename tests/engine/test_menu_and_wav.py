"""The menu state machine and WAV repair, without SIP (fast, exhaustive paths)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import pytest

from config.loader import load_config
from config.schemas import MenuFile
from ivr import wav
from ivr.menu import Emit, Enqueue, Hangup, MenuRunner, PlayPrompts, StopPrompt
from ivr.prompts import PromptError, node_prompts, prepare_file

DURATIONS = {
    "main.prompt": 3.0,
    "main.invalid": 1.0,
    "main.timeout": 1.0,
    "repair_room.prompt": 2.0,
    "repair_room.invalid": 1.0,
    "repair.prompt": 1.0,
    "to_agent.prompt": 1.0,
    "system.goodbye": 1.0,
}


@pytest.fixture
def menu(engine_config_dir: Path) -> MenuFile:
    return load_config(engine_config_dir).menu


def emitted(actions: Sequence[object], type_: str) -> list[Emit]:
    return [a for a in actions if isinstance(a, Emit) and a.type == type_]


def test_digit_barges_in_and_collect_validates_room(menu: MenuFile) -> None:
    runner = MenuRunner(menu, DURATIONS)
    start = runner.start(0.0)
    assert PlayPrompts(("main.prompt",)) in start
    actions = runner.digit("1", 0.5)  # during the prompt: barge-in
    assert isinstance(actions[1], StopPrompt)
    assert emitted(actions, "menu_chosen")[0].data == {"digit": "1", "target": "repair_room"}
    assert runner.node == "repair_room"
    for digit in "1201":
        runner.digit(digit, 3.0)
    actions = runner.digit("#", 3.1)
    assert emitted(actions, "digits_collected")[0].data == {"variable": "room", "value": "1201"}
    assert Enqueue("repair", 0, ()) in actions
    assert runner.collected == {"room": "1201"}
    assert runner.menu_path == [
        {"node": "main", "digit": "1", "target": "repair_room"},
        {"node": "repair_room", "digits": "1201", "target": "repair"},
    ]


def test_collect_times_out_with_empty_room_allowed(menu: MenuFile) -> None:
    runner = MenuRunner(menu, DURATIONS)
    runner.start(0.0)
    runner.digit("1", 0.1)
    # prompt 2 s + first-digit timeout 2 s (test config): the empty room matches the pattern
    assert runner.tick(3.9) == []
    actions = runner.tick(4.2)
    assert emitted(actions, "digits_collected")[0].data["value"] == ""
    assert any(isinstance(a, Enqueue) for a in actions)


def test_invalid_digit_retries_then_falls_back(menu: MenuFile) -> None:
    runner = MenuRunner(menu, DURATIONS)
    runner.start(0.0)
    first = runner.digit("9", 3.5)
    assert emitted(first, "menu_invalid")[0].data["then_playing"] == ["main.invalid", "main.prompt"]
    assert runner.node == "main"
    second = runner.digit("8", 5.0)  # max_retries = 1 in the test config
    assert emitted(second, "menu_entered")[0].data["node"] == "to_agent"
    assert Enqueue("general", 0, ()) in second
    assert runner.menu_path[-1] == {"node": "main", "reason": "invalid", "target": "to_agent"}


def test_silence_times_out_with_timeout_prompt_then_fallback(menu: MenuFile) -> None:
    runner = MenuRunner(menu, DURATIONS)
    runner.start(0.0)
    assert runner.tick(4.9) == []
    first = runner.tick(5.0)  # 3 s prompt + 2 s
    assert emitted(first, "menu_timeout")[0].data["then_playing"] == ["main.timeout", "main.prompt"]
    second = runner.tick(5.0 + 4.0 + 2.0)
    assert emitted(second, "menu_timeout")
    assert runner.node == "to_agent"


def test_hangup_node_plays_goodbye_then_hangs_up() -> None:
    menu = MenuFile.model_validate({"entry": "bye", "nodes": {"bye": {"kind": "hangup"}}})
    runner = MenuRunner(menu, DURATIONS)
    assert PlayPrompts(("system.goodbye",)) in runner.start(0.0)
    assert runner.tick(0.5) == []
    assert runner.tick(1.0) == [Hangup("menu_hangup")]
    assert runner.done


def test_every_menu_prompt_is_found(menu: MenuFile, engine_config_dir: Path) -> None:
    keys = set(node_prompts(load_config(engine_config_dir)))
    assert {
        "main.prompt",
        "main.invalid",
        "main.timeout",
        "repair_room.prompt",
        "repair.prompt",
    } <= keys


def test_missing_prompt_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match=r"nodes\.main\.prompt: file .*nope\.wav not found"):
        prepare_file(tmp_path / "nope.wav", tmp_path, "menu.toml: nodes.main.prompt")


def test_repair_rebuilds_header_from_data_length(tmp_path: Path) -> None:
    path = tmp_path / "dead.wav"
    data = struct.pack("<800h", *([1000, -1000] * 400))
    path.write_bytes(wav.header(0) + data + b"\x01")  # a slot died: sizes 0, half a sample
    assert not wav.is_header_consistent(path)
    facts = wav.repair(path)
    assert wav.is_header_consistent(path)
    assert facts.bytes == 44 + len(data) and facts.duration == 0.1
    pcm, rate = wav.samples(path)
    assert rate == 8000 and len(pcm) == 800 and wav.rms(pcm) == 1000


def test_repair_of_an_empty_file_gives_a_valid_wav(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    facts = wav.repair(path)
    assert facts.duration == 0 and facts.bytes == 44 and wav.is_header_consistent(path)


def test_engine_refuses_to_start_with_a_missing_prompt_file(
    tmp_path: Path, engine_config_dir: Path, prompt_cache: Path
) -> None:
    import os
    import shutil
    import subprocess
    import sys

    from callcenter.testkit.config import menu_toml, settings_file
    from ivr.prompts import copy_cache
    from tests.engine.conftest import REPO

    copy_cache(prompt_cache, tmp_path / "state")  # only the broken prompt is left to check
    config = tmp_path / "config"
    shutil.copytree(engine_config_dir, config)
    menu = menu_toml(config, main={"invalid_prompt": {"file": "prompts/missing.wav"}})
    (config / "menu.toml").write_text(menu, encoding="utf-8")
    engine_file = settings_file(
        tmp_path / "engine.toml",
        {"environment": "test", "state_dir": tmp_path / "state", "config_dir": config},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env.update(CALLCENTER_SETTINGS_FILE=str(engine_file), PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-m", "callcenter.cli", "engine"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "nodes.main.invalid: file" in result.stderr
    assert "missing.wav not found" in result.stderr
