"""Kamailio configuration text: the error every renderer raises and string quoting."""

from __future__ import annotations


class EdgeConfigError(ValueError):
    """The settings or telephony file ask for something the edge cannot do."""


def quote(value: str) -> str:
    """A Kamailio double-quoted string literal."""
    if any(ch in value for ch in '"\\\n\r'):
        raise EdgeConfigError(f"value {value!r} cannot be used in the edge configuration")
    return f'"{value}"'
