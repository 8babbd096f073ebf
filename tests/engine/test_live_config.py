"""When a slot takes a new configuration generation (ivr/live_config.py): pure, no SIP."""

from __future__ import annotations

import dataclasses

from config.loader import load_config
from config.settings import DEFAULT_CONFIG_DIR
from ivr.live_config import EngineConfig, SlotConfigSwitch, changed_prompts, engine_changes
from ivr.prompts import PromptFile

CONFIG = load_config(DEFAULT_CONFIG_DIR)


def generation(number: int) -> EngineConfig:
    return EngineConfig(number, CONFIG, {"main.prompt": PromptFile(f"/p/{number}.wav", 1.0)})


def test_idle_slot_switches_at_once_busy_slot_after_its_call() -> None:
    switch = SlotConfigSwitch(0)
    assert switch.offered(generation(1), busy=False) == generation(1)
    assert switch.current == 1
    assert switch.call_ended() is None  # nothing pending: the slot keeps generation 1

    # a call in progress keeps its generation; the newest offered waits for its end
    assert switch.offered(generation(2), busy=True) is None
    assert switch.offered(generation(3), busy=True) is None
    assert switch.current == 1
    assert switch.call_ended() == generation(3)
    assert switch.current == 3 and switch.pending is None


def test_an_older_generation_arriving_late_is_ignored() -> None:
    switch = SlotConfigSwitch(4)  # forked after generation 4 existed
    assert switch.offered(generation(3), busy=False) is None
    assert switch.offered(generation(4), busy=False) is None
    switch.offered(generation(6), busy=True)
    assert switch.offered(generation(5), busy=True) is None
    assert switch.call_ended() == generation(6)


def test_engine_changes_and_changed_prompts() -> None:
    assert engine_changes(CONFIG, CONFIG) == []
    shifted = dataclasses.replace(CONFIG, shifts=CONFIG.shifts.model_copy(update={"shifts": {}}))
    assert engine_changes(CONFIG, shifted) == []  # the engine reads no shifts
    telephony = CONFIG.telephony.model_copy(update={"sip_domain": "cc.example"})
    assert engine_changes(CONFIG, dataclasses.replace(CONFIG, telephony=telephony)) == ["telephony"]
    old = {"a": PromptFile("/x/1.wav", 1.0), "b": PromptFile("/x/2.wav", 1.0)}
    new = {"a": PromptFile("/x/3.wav", 1.0), "c": PromptFile("/x/4.wav", 1.0)}
    assert changed_prompts(old, new) == {"added": ["c"], "changed": ["a"], "removed": ["b"]}
