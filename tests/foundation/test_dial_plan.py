"""The dial plan (config/dialplan.py, telephony.toml [dial_plan]): which numbers may be dialled."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from config.dialplan import DialPlan
from config.loader import ConfigError, load_config
from config.settings import DEFAULT_CONFIG_DIR

DEFAULT = DialPlan()
HONG_KONG = DialPlan(international_prefixes=("00852",))


@pytest.mark.parametrize(
    "number", ["13912345678", "19912345678", "02161234567", "075512345678", "01012345678"]
)
def test_default_plan_allows_mobiles_and_landlines(number: str) -> None:
    assert DEFAULT.refusal(number) is None


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("0044207123456", "international number 0044207123456 is not allowed"),
        ("004420712345", "international"),  # passed as a "landline" before the dial plan
        ("+8613912345678", "digits only"),
        ("12345678901", "does not match the dial plan"),  # 12x is no mobile range
        ("1391234567", "does not match"),  # a digit short
        ("139123456789", "does not match"),  # a digit long
        ("4008001234", "does not match"),  # service numbers are not dialled out
        ("110", "does not match"),
        ("1001", "does not match"),
        ("", "digits only"),
        ("1391234567a", "digits only"),
    ],
)
def test_default_plan_refuses_everything_else_saying_why(number: str, why: str) -> None:
    refusal = DEFAULT.refusal(number)
    assert refusal is not None and why in refusal
    assert "号码" in refusal  # zh-CN first


def test_international_only_with_a_configured_prefix() -> None:
    assert HONG_KONG.refusal("0085212345678") is None
    assert HONG_KONG.refusal("00852123") is not None  # too short after the prefix
    assert HONG_KONG.refusal("00852123456789012") is None  # 17 digits in all
    assert HONG_KONG.refusal("008521234567890123") is not None  # 18
    refusal = HONG_KONG.refusal("0044207123456")
    assert refusal is not None and "00852" in refusal


@pytest.mark.parametrize("plan", [DEFAULT, HONG_KONG, DialPlan(national=(r"1[3-9]\d{9}",))])
@pytest.mark.parametrize(
    "number",
    [
        "13912345678", "02161234567", "0085212345678", "0044207123456", "4008001234",
        "1391234567", "00852123", "075512345678", "0755123456789",
    ],
)  # fmt: skip
def test_posix_patterns_for_the_edge_agree_with_python(plan: DialPlan, number: str) -> None:
    """The edge applies posix_national to numbers not starting with 00, and
    posix_international to all (Python's re agrees with POSIX ERE on this subset)."""
    national = re.fullmatch(plan.posix_national()[1:-1], number) and not number.startswith("00")
    international_pattern = plan.posix_international()
    international = international_pattern and re.fullmatch(international_pattern[1:-1], number)
    assert bool(national or international) == plan.allows(number)


def write_dial_plan(tmp_path: Path, body: str, targets: str = "") -> Path:
    directory = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, directory)
    telephony = directory / "telephony.toml"
    text = telephony.read_text(encoding="utf-8")
    text = text[: text.index("[dial_plan]")] + "[dial_plan]\n" + body
    text = text.replace("[trunks]\n", '[trunks.carrier]\nhost = "192.0.2.1"\n')
    text = text.replace("[transfer_targets]\n", "[transfer_targets]\n" + targets)
    telephony.write_text(text, encoding="utf-8")
    return directory


def test_shipped_telephony_file_has_the_default_plan() -> None:
    plan = load_config(DEFAULT_CONFIG_DIR).telephony.dial_plan.plan()
    assert plan == DialPlan()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("national = ['1.*']\n", "only digits"),
        ("national = ['1[3-9']\n", "not a regular expression"),
        ("national = ['(1)?']\n", "matches an empty number"),
        ("national = []\n", "national"),
        ('international_prefixes = ["852"]\n', "00 and a country code"),
        ('international_prefixes = ["00852x"]\n', "00 and a country code"),
    ],
)
def test_bad_dial_plans_are_refused_at_load_naming_the_key(
    tmp_path: Path, body: str, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write_dial_plan(tmp_path, body))
    text = str(raised.value)
    assert "telephony.toml" in text and "dial_plan" in text and message in text, text


def test_a_transfer_target_over_a_trunk_outside_the_plan_is_refused_at_load(
    tmp_path: Path,
) -> None:
    target = (
        '[transfer_targets.abroad]\nname = { zh-CN = "境外", en = "Abroad" }\n'
        'number = "0044207123456"\ntrunk = "carrier"\n'
    )
    with pytest.raises(ConfigError, match=r"transfer_targets.abroad.number: .*international"):
        load_config(write_dial_plan(tmp_path, "", targets=target))
    allowed = load_config(
        write_dial_plan(tmp_path / "hk", 'international_prefixes = ["0044"]\n', targets=target)
    )
    assert allowed.telephony.transfer_targets["abroad"].number == "0044207123456"
