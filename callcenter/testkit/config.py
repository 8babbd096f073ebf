"""Test configurations made from the typed models, not by editing the shipped text.

A change names the file's keys (``queues_toml(repair={"strategy": "round_robin"})``); the
shipped file is loaded with its model, the change applied to the loaded values, the result
validated by the same model (so a misspelt key or a value out of range fails here, with the
loader's message) and written as TOML. A key changed to ``None`` is removed (the queue then
has no overflow, say). Needs the test extras (``tomli-w``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import tomli_w
from pydantic import BaseModel, ValidationError

from config.loader import load_file
from config.schemas import MenuFile, QueuesFile, TelephonyFile
from config.settings import DEFAULT_CONFIG_DIR, Settings

M = TypeVar("M", bound=BaseModel)


class ConfigEditError(ValueError):
    """A test asked for a change the configuration's model does not allow."""


def to_toml(config: BaseModel) -> str:
    """A validated configuration as the TOML an admin would write (unset values left out)."""
    return tomli_w.dumps(config.model_dump(mode="json", exclude_none=True, by_alias=True))


def edited(model: type[M], values: dict[str, Any], file: str) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigEditError(f"{file}: {exc}") from None


def _apply(table: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value


def _edit_tables(
    values: dict[str, Any], section: str, changes: dict[str, dict[str, Any]], file: str
) -> None:
    for code, table_changes in changes.items():
        if code not in values[section]:
            raise ConfigEditError(f"{file}: {section}.{code}: no such {section[:-1]}")
        _apply(values[section][code], table_changes)


def queues_toml(
    source: Path = DEFAULT_CONFIG_DIR, *, file: dict[str, Any] | None = None, **queues: Any
) -> str:
    """``queues.toml`` with these queues' keys changed (``repair={"wrap_up_seconds": 3}``)
    and, in ``file``, top-level keys (``short_abandon_seconds``)."""
    values = load_file(source / "queues.toml", QueuesFile).model_dump(mode="json")
    _apply(values, file or {})
    _edit_tables(values, "queues", queues, "queues.toml")
    return to_toml(edited(QueuesFile, values, "queues.toml"))


def menu_toml(source: Path = DEFAULT_CONFIG_DIR, **nodes: Any) -> str:
    """``menu.toml`` with these nodes' keys changed (``main={"max_retries": 1}``)."""
    values = load_file(source / "menu.toml", MenuFile).model_dump(mode="json")
    _edit_tables(values, "nodes", nodes, "menu.toml")
    return to_toml(edited(MenuFile, values, "menu.toml"))


def telephony_toml(values: dict[str, Any]) -> str:
    """A whole ``telephony.toml`` from its keys, validated by the file's model."""
    return to_toml(edited(TelephonyFile, values, "telephony.toml"))


def shipped_telephony(source: Path = DEFAULT_CONFIG_DIR) -> dict[str, Any]:
    """The keys of the shipped ``telephony.toml``, to change and give to :func:`telephony_toml`."""
    loaded = load_file(source / "telephony.toml", TelephonyFile)
    values: dict[str, Any] = loaded.model_dump(mode="json", exclude_none=True)
    return values


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def settings_file(path: Path, values: dict[str, Any]) -> Path:
    """A ``CALLCENTER_SETTINGS_FILE`` (TOML) holding ``values`` (``{"sip": {"lines": 4}}``),
    refused first if the typed settings refuse them (a misspelt key, a value out of range)."""
    try:
        Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigEditError(f"{path.name}: {exc}") from None
    path.write_text(tomli_w.dumps(_plain(values)), encoding="utf-8")
    return path
