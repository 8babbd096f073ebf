"""Test configurations are written from the typed models: the shipped file comes back as it
was, a change lands where it is named, and a change the model refuses fails at once."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from callcenter.testkit.config import ConfigEditError, queues_toml, settings_file
from config.loader import load_file
from config.schemas import QueuesFile
from config.settings import DEFAULT_CONFIG_DIR


def parsed(text: str) -> QueuesFile:
    return QueuesFile.model_validate(tomllib.loads(text))


def test_no_change_gives_the_shipped_queues() -> None:
    assert parsed(queues_toml()) == load_file(DEFAULT_CONFIG_DIR / "queues.toml", QueuesFile)


def test_a_change_lands_on_the_named_queue_only() -> None:
    shipped = load_file(DEFAULT_CONFIG_DIR / "queues.toml", QueuesFile)
    changed = parsed(queues_toml(repair={"wrap_up_seconds": 3}, file={"short_abandon_seconds": 9}))
    assert changed.queues["repair"].wrap_up_seconds == 3
    assert changed.short_abandon_seconds == 9
    assert changed.queues["general"] == shipped.queues["general"]
    assert changed.queues["repair"].name == shipped.queues["repair"].name


def test_changes_the_model_refuses_fail_here() -> None:
    with pytest.raises(ConfigEditError, match=r"queues\.nowhere: no such queue"):
        queues_toml(nowhere={"wrap_up_seconds": 3})
    with pytest.raises(ConfigEditError, match="wrap_up_secs"):
        queues_toml(repair={"wrap_up_secs": 3})  # misspelt key
    with pytest.raises(ConfigEditError, match="ring_timeout_seconds"):
        queues_toml(repair={"ring_timeout_seconds": 1})  # below the minimum of 3


def test_a_settings_file_is_written_from_values_the_typed_settings_accept(tmp_path: Path) -> None:
    values = {"environment": "test", "state_dir": tmp_path / "state", "sip": {"lines": 4}}
    written = tomllib.loads(settings_file(tmp_path / "engine.toml", values).read_text())
    assert written == {"environment": "test", "state_dir": str(tmp_path / "state"),
                       "sip": {"lines": 4}}  # fmt: skip
    with pytest.raises(ConfigEditError, match=r"bad\.toml"):
        settings_file(tmp_path / "bad.toml", {"environment": "test", "sip_lines": 4})
    assert not (tmp_path / "bad.toml").exists()
