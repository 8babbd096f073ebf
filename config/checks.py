"""This project's own checks of the declarative files, as data: each refusal has an id, the
values it names and its English text (what ``check-config`` prints and the API's ``problems``
carry). The loader copies the id and the values into the problem's ``context`` (``check``),
so a page can give the same refusal in its reader's language (``pages/config_messages.py``)
instead of showing the English behind a translated prefix.

A check that blames a key other than the one pydantic reports starts its text with that key
(``"entry: ..."``); the loader moves it into the problem's key (``config/loader.py``).
"""

from __future__ import annotations

# id: (the key it blames, relative to the table checked, or "" for pydantic's own; the text)
CHECKS: dict[str, tuple[str, str]] = {
    # schemas.py: times, menus
    "time_hhmm": ("", "expected a time as HH:MM (00:00-23:59), got {value}"),
    "prompt_source": ("", "a prompt needs exactly one of 'text' or 'file'"),
    "digit_twice": ("", "digit {digit} is used twice"),
    "regex": ("", "not a valid regular expression: {reason}"),
    "entry_undefined": ("entry", "node {node} is not defined in [nodes]"),
    "node_undefined": ("nodes.{name}.{key}", "node {node} is not defined"),
    # queues
    "overflow_needed": ("no_agents", "'overflow' needs an [overflow] table with 'to'"),
    "overflow_undefined": ("queues.{code}.overflow.to", "queue {queue} is not defined"),
    "overflow_self": ("queues.{code}.overflow.to", "a queue cannot overflow to itself"),
    # shifts
    "shift_empty": ("end", "a shift cannot start and end at the same time"),
    "shift_wraps": (
        "overnight",
        "the shift ends ({end}) before it starts ({start}); "
        "set overnight = true if it runs past midnight",
    ),
    "shift_not_overnight": ("overnight", "set to true but {start}-{end} does not cross midnight"),
    # dispatch
    "sla_minutes": ("minutes", "give minutes, or set agreed = true (not both)"),
    "category_department": (
        "categories.{code}.department",
        "department {department} is not defined in [departments]",
    ),
    "category_sla": ("categories.{code}.sla", "SLA class {sla} is not defined in [sla]"),
    "tracks_missing": ("tracks", "missing {missing}"),
    # telephony and its dial plan (dialplan.py)
    "pattern_syntax": (
        "",
        "{pattern}: only digits, [...] classes, \\d, {{m,n}}, ?, | and parentheses may be used",
    ),
    "pattern_regex": ("", "{pattern}: not a regular expression ({reason})"),
    "pattern_empty": ("", "{pattern} matches an empty number"),
    "prefix_syntax": (
        "",
        '{prefix}: an international prefix is 00 and a country code, e.g. "00852"',
    ),
    "outbound_trunk_undefined": ("outbound_trunk", "trunk {trunk} is not defined"),
    "target_trunk_undefined": ("transfer_targets.{code}.trunk", "trunk {trunk} is not defined"),
    "target_number_refused": ("transfer_targets.{code}.number", "{refusal}"),
    "did_twice": ("dids", "number {number} is listed twice"),
    # qa
    "scorecard_undefined": (
        "default_scorecard",
        "scorecard {scorecard} is not defined in [scorecards]",
    ),
}


class CheckFailed(ValueError):
    """A refusal of one of :data:`CHECKS`: its text is the English line, ``check`` and
    ``values`` (as text) what a translation fills in."""

    def __init__(self, check: str, **values: object) -> None:
        self.check = check
        self.values = {name: str(value) for name, value in values.items()}
        key, text = CHECKS[check]
        line = text.format(**self.values)
        super().__init__(f"{key.format(**self.values)}: {line}" if key else line)
