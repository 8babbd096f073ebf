"""The dial plan: which numbers the center may dial out (telephony.toml ``[dial_plan]``).

A public hotline's slots must never become a way to call anywhere at the center's cost, so
every outbound path (callbacks, surveys, click-to-call, transfers to numbers) asks this module
before dialling, and the SIP edge enforces the same rules on every INVITE a slot sends towards
a trunk (``posix_pattern`` is rendered into kamailio.cfg).

- National numbers: each ``national`` pattern must match the whole number (by default
  mobiles ``1[3-9]\\d{9}`` and landlines with their area code ``0[1-9]\\d{9,10}``).
- International numbers: only those starting with a configured prefix (e.g. ``"00852"``),
  then 4 to 15 more digits, at most 17 digits in all (``00`` and an E.164 number).
  Numbers written with ``+`` are never dialled: international numbers use ``00``.

Patterns use a small regular-expression subset that means the same in Python and in
Kamailio's POSIX expressions: digits, ``[...]`` classes, ``\\d``, ``{m,n}``, ``?``, ``|`` and
parentheses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from config.checks import CheckFailed

DEFAULT_NATIONAL = (r"1[3-9]\d{9}", r"0[1-9]\d{9,10}")

_PATTERN_SYNTAX = re.compile(r"(?:[0-9\[\]{},?|()\-]|\\d)+")
_PREFIX_SYNTAX = re.compile(r"00[1-9][0-9]{0,5}")
MAX_INTERNATIONAL_DIGITS = 17


def pattern_problem(pattern: str) -> CheckFailed | None:
    """Why a national pattern cannot be used (None when it can)."""
    if not _PATTERN_SYNTAX.fullmatch(pattern):
        return CheckFailed("pattern_syntax", pattern=repr(pattern))
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return CheckFailed("pattern_regex", pattern=repr(pattern), reason=exc)
    if compiled.fullmatch("") is not None:
        return CheckFailed("pattern_empty", pattern=repr(pattern))
    return None


def prefix_problem(prefix: str) -> CheckFailed | None:
    """Why an international prefix cannot be used (None when it can)."""
    if not _PREFIX_SYNTAX.fullmatch(prefix):
        return CheckFailed("prefix_syntax", prefix=repr(prefix))
    return None


@dataclass(frozen=True)
class DialPlan:
    national: tuple[str, ...] = DEFAULT_NATIONAL
    international_prefixes: tuple[str, ...] = ()

    def refusal(self, number: str) -> str | None:
        """Why ``number`` may not be dialled out (None when it may), in zh-CN and English."""
        if not re.fullmatch(r"\d+", number):
            return f"号码只能包含数字 / {number!r} is not a number made of digits only"
        if number.startswith("00"):
            fits = len(number) <= MAX_INTERNATIONAL_DIGITS
            for prefix in self.international_prefixes:
                if fits and number.startswith(prefix) and len(number) - len(prefix) >= 4:
                    return None
            allowed = ", ".join(self.international_prefixes) or "none"
            return (
                f"国际号码不在允许范围 / international number {number} is not allowed "
                f"(allowed prefixes: {allowed}; telephony.toml [dial_plan])"
            )
        if any(re.fullmatch(pattern, number) for pattern in self.national):
            return None
        return (
            f"号码不在外呼范围 / {number} does not match the dial plan "
            "(telephony.toml [dial_plan] national)"
        )

    def allows(self, number: str) -> bool:
        return self.refusal(number) is None

    def posix_national(self) -> str:
        """Anchored POSIX extended expression of the national patterns (the edge applies it
        only to numbers not starting with 00, as ``refusal`` does)."""
        parts = [pattern.replace(r"\d", "[0-9]") for pattern in self.national]
        return "^(" + "|".join(f"({part})" for part in parts) + ")$"

    def posix_international(self) -> str | None:
        """Anchored POSIX extended expression of the allowed international numbers."""
        if not self.international_prefixes:
            return None
        parts = [
            f"{prefix}[0-9]{{4,{MAX_INTERNATIONAL_DIGITS - len(prefix)}}}"
            for prefix in self.international_prefixes
        ]
        return "^(" + "|".join(parts) + ")$"
