"""A small message catalog for the pages: ``t(key, lang)``; zh-CN is the default language.

The messages are data, one line each in ``pages/messages.toml`` (the config editor's validation
messages are built in :mod:`pages.config_messages`); a page adds its keys there. A missing
text falls back to English, then to the key itself, so a page never breaks on a missing
translation.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from fastapi import Request

from pages.config_messages import CONFIG_PROBLEM_MESSAGES

LANGUAGES = ("zh-CN", "en")
DEFAULT = "zh-CN"

CATALOG = Path(__file__).with_name("messages.toml")


def load(path: Path) -> dict[str, dict[str, str]]:
    """The messages of a catalogue file, by key: ``{"zh-CN": ..., "en": ...}``."""
    with path.open("rb") as file:
        return {key: dict(entry) for key, entry in tomllib.load(file).items()}


MESSAGES: dict[str, dict[str, str]] = load(CATALOG)
MESSAGES.update(CONFIG_PROBLEM_MESSAGES)


def t(key: str, lang: str = DEFAULT) -> str:
    entry = MESSAGES.get(key)
    if entry is None:
        return key
    return entry.get(lang) or entry.get("en") or key


def lang_of(request: Request) -> str:
    """``?lang=en`` or ``?lang=zh-CN``; anything else means the default (Chinese)."""
    wanted = request.query_params.get("lang", DEFAULT)
    return wanted if wanted in LANGUAGES else DEFAULT


def catalog(lang: str, prefix: str = "") -> dict[str, str]:
    """Every message under ``prefix`` in ``lang`` (for the page's script)."""
    return {key: t(key, lang) for key in MESSAGES if key.startswith(prefix)}
