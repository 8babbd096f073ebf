"""The context background jobs use. RQ jobs take ids, so they need the clients from somewhere:
a worker process builds its context once from settings; tests install theirs explicitly."""

from __future__ import annotations

from callcenter.context import AppContext, build_context
from config.settings import load_settings

_context: AppContext | None = None


def set_context(ctx: AppContext | None) -> None:
    global _context
    _context = ctx


def get_context() -> AppContext:
    global _context
    if _context is None:
        _context = build_context(load_settings())
    return _context
