"""Load and validate the declarative files under a config directory.

Every problem is reported as ``<file>: <dotted.key>: <what is wrong>`` so an admin can find
it without reading Python. All files are checked before anything starts; ``callcenter
check-config`` prints the same report.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from config.schemas import (
    CallbackNode,
    CallbacksFile,
    DispatchFile,
    EnqueueNode,
    MenuFile,
    QaFile,
    QueuesFile,
    ShiftsFile,
    TelephonyFile,
    TransferNode,
    WebhooksFile,
)

FILES: dict[str, type[BaseModel]] = {
    "menu.toml": MenuFile,
    "queues.toml": QueuesFile,
    "shifts.toml": ShiftsFile,
    "dispatch.toml": DispatchFile,
    "callbacks.toml": CallbacksFile,
    "telephony.toml": TelephonyFile,
    "webhooks.toml": WebhooksFile,
    "qa.toml": QaFile,
}

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """One or more declarative files are wrong; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class CenterConfig:
    """Every declarative file, validated and cross-checked."""

    directory: Path
    menu: MenuFile
    queues: QueuesFile
    shifts: ShiftsFile
    dispatch: DispatchFile
    callbacks: CallbacksFile
    telephony: TelephonyFile
    qa: QaFile
    webhooks: WebhooksFile = field(default_factory=WebhooksFile)


_NODE_KINDS = {"menu", "play", "collect", "enqueue", "callback", "transfer", "hangup"}


def _dotted(loc: tuple[int | str, ...]) -> str:
    """The admin's key for a pydantic error location.

    pydantic puts a discriminated union's tag into the location (``nodes.main.menu.prompt``);
    the admin wrote ``nodes.main.prompt``, so the tag after a node name is dropped.
    """
    parts = [str(p) for p in loc]
    kept = [
        p
        for i, p in enumerate(parts)
        if not (i >= 2 and parts[i - 2] == "nodes" and p in _NODE_KINDS)
    ]
    return ".".join(kept)


_KEYED_MESSAGE = re.compile(r"^(?P<key>[A-Za-z0-9_.\-]+): (?P<message>.*)$", re.S)


def _format(file: Path, error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        key = _dotted(tuple(item["loc"]))
        message = str(item["msg"]).removeprefix("Value error, ")
        # Validators that check a table as a whole start their message with the key they
        # blame, relative to that table ("overflow.to: ...", "entry: ...").
        keyed = _KEYED_MESSAGE.match(message)
        if item["type"] == "value_error" and keyed:
            inner = keyed["key"]
            message = keyed["message"]
            key = (
                inner if not key or inner.startswith(key.split(".")[0] + ".") else f"{key}.{inner}"
            )
        if item["type"] == "missing":
            message = "required key is missing"
        elif item["type"] == "extra_forbidden":
            message = "unknown key (not allowed here)"
        elif item["type"] not in {"value_error", "assertion_error"} and "input" in item:
            message = f"{message} (got {item['input']!r})"
        problems.append(f"{file}: {key or '(top level)'}: {message}")
    return problems


_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY_AT_START = re.compile(r"^\s*([A-Za-z0-9_\-\.\"]+)\s*=")


def _key_at_line(text: str, line_no: int) -> str:
    """The dotted key a TOML syntax error points at: the table header above it plus the key."""
    lines = text.splitlines()
    table = ""
    for line in lines[: max(line_no - 1, 0)]:
        header = _TABLE_HEADER.match(line)
        if header:
            table = header.group(1).replace('"', "")
    key_match = _KEY_AT_START.match(lines[line_no - 1]) if 0 < line_no <= len(lines) else None
    key = key_match.group(1).replace('"', "") if key_match else ""
    return ".".join(part for part in (table, key) if part) or "(syntax)"


def load_file(path: Path, model: type[M]) -> M:
    """Parse and validate one file; raise ConfigError naming the file and key."""
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: (file): not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        text = path.read_text(encoding="utf-8")
        key = _key_at_line(text, int(line.group(1))) if line else "(syntax)"
        raise ConfigError([f"{path}: {key}: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: (encoding): not UTF-8: {exc}"]) from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format(path, exc)) from None


def _cross_check(cfg: CenterConfig) -> list[str]:
    problems = []
    menu_file = cfg.directory / "menu.toml"
    for name, node in cfg.menu.nodes.items():
        if isinstance(node, EnqueueNode | CallbackNode) and node.queue not in cfg.queues.queues:
            problems.append(
                f"{menu_file}: nodes.{name}.queue: queue {node.queue!r} is not defined "
                f"in {cfg.directory / 'queues.toml'}"
            )
        if isinstance(node, TransferNode) and node.target not in cfg.telephony.transfer_targets:
            problems.append(
                f"{menu_file}: nodes.{name}.target: transfer target {node.target!r} is not "
                f"defined in {cfg.directory / 'telephony.toml'} [transfer_targets]"
            )
    for index, did in enumerate(cfg.telephony.dids):
        if did.entry and did.entry not in cfg.menu.nodes:
            problems.append(
                f"{cfg.directory / 'telephony.toml'}: dids.{index}.entry: node {did.entry!r} "
                f"is not defined in {menu_file}"
            )
    if cfg.callbacks.queue not in cfg.queues.queues:
        problems.append(
            f"{cfg.directory / 'callbacks.toml'}: queue: queue {cfg.callbacks.queue!r} is not "
            f"defined in {cfg.directory / 'queues.toml'}"
        )
    return problems


def load_config(directory: Path) -> CenterConfig:
    """Load every declarative file in ``directory``; raise one ConfigError listing all problems."""
    problems: list[str] = []
    loaded: dict[str, BaseModel] = {}
    for filename, model in FILES.items():
        try:
            loaded[filename] = load_file(directory / filename, model)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    cfg = CenterConfig(
        directory=directory,
        menu=loaded["menu.toml"],  # type: ignore[arg-type]
        queues=loaded["queues.toml"],  # type: ignore[arg-type]
        shifts=loaded["shifts.toml"],  # type: ignore[arg-type]
        dispatch=loaded["dispatch.toml"],  # type: ignore[arg-type]
        callbacks=loaded["callbacks.toml"],  # type: ignore[arg-type]
        telephony=loaded["telephony.toml"],  # type: ignore[arg-type]
        webhooks=loaded["webhooks.toml"],  # type: ignore[arg-type]
        qa=loaded["qa.toml"],  # type: ignore[arg-type]
    )
    problems = _cross_check(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def config_with(cfg: CenterConfig, documents: dict[str, dict[str, Any]]) -> CenterConfig:
    """``cfg`` with files replaced by ``documents`` (file name -> the file's TOML structure as
    JSON), validated and cross-checked as ``load_config`` does: a ConfigError lists every
    problem as ``<file>: <dotted.key>: <problem>``, exactly as ``check-config`` prints it."""
    problems: list[str] = []
    replaced: dict[str, BaseModel] = {}
    for filename, document in documents.items():
        path = cfg.directory / filename
        model = FILES.get(filename)
        if model is None:
            problems.append(f"{path}: (file): not a declarative file; known: {', '.join(FILES)}")
            continue
        try:
            replaced[filename.removesuffix(".toml")] = model.model_validate(document)
        except ValidationError as exc:
            problems.extend(_format(path, exc))
    if problems:
        raise ConfigError(problems)
    changed = dataclasses.replace(cfg, **replaced)  # type: ignore[arg-type]
    problems = _cross_check(changed)
    if problems:
        raise ConfigError(problems)
    return changed
