"""This project's own refusals of the declarative files (``config/checks.py``) and the SIP
edge's refusals of a telephony.toml version (``admin/edge_checks.py``) carry their
id and values in the problem's context, so the zh-CN editor can say them in Chinese; the
English lines (``problems``, ``message``) stay as ``check-config`` prints them."""

from __future__ import annotations

import re
from typing import Any

import pytest

from admin import config_versions
from admin.edge_checks import EDGE_CHECKS, edge_problem
from callcenter.context import AppContext
from callcenter.errors import InvalidInput
from config.checks import CHECKS
from config.loader import ConfigError, load_file
from config.schemas import ShiftsFile
from pages.config_messages import CHECKS_ZH, CONFIG_PROBLEM_MESSAGES


def _names(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


def test_every_check_has_chinese_naming_the_same_values() -> None:
    assert set(CHECKS_ZH) == set(CHECKS) | set(EDGE_CHECKS)
    for check in CHECKS_ZH:
        entry = CONFIG_PROBLEM_MESSAGES[f"admin.check.{check}"]
        assert _names(entry["zh-CN"]) == _names(entry["en"]), check
        assert re.search(r"[\u4e00-\u9fff]", entry["zh-CN"]) or check == "target_number_refused"


def test_a_files_check_carries_its_id_and_values_beside_the_english(tmp_path: Any) -> None:
    path = tmp_path / "shifts.toml"
    path.write_text(
        '[shifts.day]\nname = { zh-CN = "早班", en = "Day" }\nstart = "08:00"\nend = "08:00"\n'
        '[shifts.night]\nname = { zh-CN = "夜班", en = "Night" }\nstart = "20:00"\n'
        'end = "08:00"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as refused:
        load_file(path, ShiftsFile)
    by_key = {p.key: p for p in refused.value.items}
    same = by_key["shifts.day.end"]
    assert str(same) == f"{path}: shifts.day.end: a shift cannot start and end at the same time"
    assert (same.type, same.context["check"]) == ("value_error", "shift_empty")
    wraps = by_key["shifts.night.overnight"]
    assert wraps.message == (
        "the shift ends (08:00) before it starts (20:00); set overnight = true if it runs "
        "past midnight"
    )
    assert wraps.context == {
        "check": "shift_wraps",
        "start": "20:00",
        "end": "08:00",
        "message": wraps.message,
    }


def _telephony_refusal(ctx: AppContext, **trunk: Any) -> dict[str, Any]:
    with ctx.sessions() as session:
        _version, document = config_versions.current(session, ctx, name="telephony")
        document["trunks"] = {"carrier": {"host": "192.0.2.10", **trunk}}
        with pytest.raises(InvalidInput) as refused:
            config_versions.validate(session, ctx, name="telephony", document=document)
    details = refused.value.details
    assert len(details["items"]) == 1
    return {"line": details["problems"][0], **details["items"][0]}


@pytest.mark.parametrize(
    ("trunk", "check", "values", "line"),
    [
        (
            {"host": "bad host!"},
            "edge_trunk_host",
            {"code": "carrier", "host": "'bad host!'"},
            "trunks.carrier.host: 'bad host!' is not a host name or IP address",
        ),
        (
            {"outbound_prefix": "12a"},
            "edge_trunk_prefix",
            {"code": "carrier", "prefix": "'12a'"},
            "trunks.carrier.outbound_prefix: '12a': digits only",
        ),
        (
            {"transport": "tls"},
            "edge_trunk_tls",
            {"code": "carrier"},
            "trunks.carrier.transport: tls needs Kamailio's tls module",
        ),
        (
            {"host": "nosuch.invalid"},
            "edge_trunk_resolve",
            {"code": "carrier", "host": "'nosuch.invalid'"},
            "trunks.carrier.host: cannot resolve 'nosuch.invalid': ",
        ),
    ],
)
def test_the_edges_refusals_are_recognised_as_the_edge_writes_them(
    ctx: AppContext, trunk: dict[str, Any], check: str, values: dict[str, str], line: str
) -> None:
    problem = _telephony_refusal(ctx, **trunk)
    assert problem["type"] == "edge"
    assert problem["line"].startswith("SIP edge: telephony.toml: " + line)  # English kept
    assert problem["key"] == line.split(":")[0]  # the editor shows it beside this key
    assert problem["context"]["check"] == check
    assert values.items() <= problem["context"].items()


def test_an_edge_line_not_listed_keeps_its_english() -> None:
    problem = edge_problem("SIP edge: something new went wrong")
    assert problem.context == {"message": "something new went wrong"} and problem.key == ""
    quoted = edge_problem("SIP edge: value 'a\"b' cannot be used in the edge configuration")
    assert quoted.context["check"] == "edge_quote" and quoted.context["value"] == "'a\"b'"
