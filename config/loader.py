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

from config.checks import CheckFailed
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


@dataclass(frozen=True)
class Problem:
    """One problem of a declarative file: where (file, dotted key), what kind (``type``: the
    pydantic error type such as ``missing``, ``greater_than_equal``, ``literal_error``, or
    ``value_error`` for this project's own checks, ``undefined_queue`` / ``undefined_node`` /
    ``undefined_transfer_target`` for the cross-file checks, ``syntax``, ``file``), the values
    a translation needs (``context``, e.g. ``{"ge": 3, "input": "-3"}``) and the English text
    ``check-config`` prints. ``str()`` is that line."""

    file: str
    key: str
    message: str
    type: str = "value_error"
    context: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}"

    def public(self) -> dict[str, Any]:
        """JSON for an API answer (the file by its name, not the server's path)."""
        return {
            "file": Path(self.file).name if self.file else "",
            "key": self.key,
            "type": self.type,
            "context": self.context,
            "message": self.message,
        }


class ConfigError(Exception):
    """One or more declarative files are wrong; ``problems`` lists each one as the line
    ``check-config`` prints, ``items`` the same problems as :class:`Problem`."""

    def __init__(self, problems: list[Problem] | list[str]) -> None:
        self.items = [
            p if isinstance(p, Problem) else Problem("", "", p, "other") for p in problems
        ]
        self.problems = [str(p) for p in problems]
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.problems))


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return str(value)


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


def _format(file: Path, error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors():
        key = _dotted(tuple(item["loc"]))
        message = str(item["msg"]).removeprefix("Value error, ")
        kind = str(item["type"])
        context = {name: _json_safe(value) for name, value in item.get("ctx", {}).items()}
        context.pop("error", None)  # a validator's exception object: its text is the message
        raised = item.get("ctx", {}).get("error")
        if isinstance(raised, CheckFailed):  # one of this project's checks: its id and values
            context.update(raised.values, check=raised.check)
        for name in ("expected", "expected_tags"):  # "'a', 'b' or 'c'": no English "or" kept
            if isinstance(context.get(name), str):
                context[name] = re.sub(r"'(, | or )'", "', '", context[name])
        # Validators that check a table as a whole start their message with the key they
        # blame, relative to that table ("overflow.to: ...", "entry: ...").
        keyed = _KEYED_MESSAGE.match(message)
        if kind == "value_error" and keyed:
            inner = keyed["key"]
            message = keyed["message"]
            key = (
                inner if not key or inner.startswith(key.split(".")[0] + ".") else f"{key}.{inner}"
            )
        if kind in {"value_error", "assertion_error"}:
            context["message"] = message
        if kind == "missing":
            message = "required key is missing"
        elif kind == "extra_forbidden":
            message = "unknown key (not allowed here)"
        elif kind not in {"value_error", "assertion_error"} and "input" in item:
            message = f"{message} (got {item['input']!r})"
            context["input"] = repr(item["input"])
        problems.append(Problem(str(file), key or "(top level)", message, kind, context))
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
        raise ConfigError([Problem(str(path), "(file)", "not found", "file_missing")]) from None
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        text = path.read_text(encoding="utf-8")
        key = _key_at_line(text, int(line.group(1))) if line else "(syntax)"
        raise ConfigError(
            [Problem(str(path), key, str(exc), "syntax", {"message": str(exc)})]
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem(str(path), "(encoding)", f"not UTF-8: {exc}", "encoding")]
        ) from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format(path, exc)) from None


def _cross_check(cfg: CenterConfig) -> list[Problem]:
    problems = []
    menu_file = str(cfg.directory / "menu.toml")
    queues_file = str(cfg.directory / "queues.toml")
    telephony_file = str(cfg.directory / "telephony.toml")
    for name, node in cfg.menu.nodes.items():
        if isinstance(node, EnqueueNode | CallbackNode) and node.queue not in cfg.queues.queues:
            problems.append(
                Problem(
                    menu_file,
                    f"nodes.{name}.queue",
                    f"queue {node.queue!r} is not defined in {queues_file}",
                    "undefined_queue",
                    {"value": node.queue, "file": "queues.toml"},
                )
            )
        if isinstance(node, TransferNode) and node.target not in cfg.telephony.transfer_targets:
            problems.append(
                Problem(
                    menu_file,
                    f"nodes.{name}.target",
                    f"transfer target {node.target!r} is not defined in {telephony_file} "
                    "[transfer_targets]",
                    "undefined_transfer_target",
                    {"value": node.target, "file": "telephony.toml"},
                )
            )
    for index, did in enumerate(cfg.telephony.dids):
        if did.entry and did.entry not in cfg.menu.nodes:
            problems.append(
                Problem(
                    telephony_file,
                    f"dids.{index}.entry",
                    f"node {did.entry!r} is not defined in {menu_file}",
                    "undefined_node",
                    {"value": did.entry, "file": "menu.toml"},
                )
            )
    if cfg.callbacks.queue not in cfg.queues.queues:
        problems.append(
            Problem(
                str(cfg.directory / "callbacks.toml"),
                "queue",
                f"queue {cfg.callbacks.queue!r} is not defined in {queues_file}",
                "undefined_queue",
                {"value": cfg.callbacks.queue, "file": "queues.toml"},
            )
        )
    return problems


def load_config(directory: Path) -> CenterConfig:
    """Load every declarative file in ``directory``; raise one ConfigError listing all problems."""
    problems: list[Problem] = []
    loaded: dict[str, BaseModel] = {}
    for filename, model in FILES.items():
        try:
            loaded[filename] = load_file(directory / filename, model)
        except ConfigError as exc:
            problems.extend(exc.items)
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
    problems: list[Problem] = []
    replaced: dict[str, BaseModel] = {}
    for filename, document in documents.items():
        path = cfg.directory / filename
        model = FILES.get(filename)
        if model is None:
            message = f"not a declarative file; known: {', '.join(FILES)}"
            problems.append(Problem(str(path), "(file)", message, "file_unknown"))
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
