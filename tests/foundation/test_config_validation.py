"""Every declarative file refuses broken input with a message naming the file and the key."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from config.loader import FILES, ConfigError, load_config
from config.settings import DEFAULT_CONFIG_DIR

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"test setup: {old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def problems_for(config_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    return caught.value.problems


def test_defaults_load() -> None:
    cfg = load_config(DEFAULT_CONFIG_DIR)
    assert set(cfg.menu.nodes["main"].options) == {"0", "1", "2", "3", "4"}  # type: ignore[union-attr]
    assert cfg.shifts.answer_rate_target == 0.9
    assert [f"{s.start:%H:%M}-{s.end:%H:%M}" for s in cfg.shifts.shifts.values()] == [
        "08:00-20:00",
        "09:00-21:00",
        "20:00-08:00",
    ]
    assert cfg.dispatch.sla["30m"].minutes == 30
    assert cfg.dispatch.sla["3d"].written_notice
    assert cfg.callbacks.delay_after_sla_hours == 24
    assert cfg.telephony.dids[0].number == "4008001234"


# (file, old text, new text, expected key in the message, expected words in the message)
CASES = [
    # missing keys
    ("menu.toml", 'entry = "main"\n', "", "entry", "required"),
    (
        "queues.toml",
        'name = { zh-CN = "报修", en = "Repairs" }\n',
        "",
        "queues.repair.name",
        "required",
    ),
    (
        "shifts.toml",
        'start = "09:00"\nend = "21:00"',
        'end = "21:00"',
        "shifts.mid.start",
        "required",
    ),
    ("dispatch.toml", 'department = "finance"\n', "", "categories.fees.department", "required"),
    ("callbacks.toml", "within_days = 3", "within_days = 0", "within_days", "greater than 0"),
    ("telephony.toml", 'number = "4008001234"', 'number = "hotline"', "dids.0.number", "pattern"),
    (
        "webhooks.toml",
        "# [targets.erp]\n# url",
        '[targets.erp]\nsecret = "a-long-shared-secret"\n# url',
        "targets.erp.url",
        "required",
    ),
    # wrong types
    ("menu.toml", "max_retries = 2", 'max_retries = "two"', "nodes.main.max_retries", "integer"),
    (
        "queues.toml",
        "ring_timeout_seconds = 15\nwrap_up_seconds = 45",
        'ring_timeout_seconds = "soon"\nwrap_up_seconds = 45',
        "queues.repair.ring_timeout_seconds",
        "integer",
    ),
    (
        "shifts.toml",
        "answer_rate_target = 0.9",
        'answer_rate_target = "90%"',
        "answer_rate_target",
        "number",
    ),
    ("callbacks.toml", "max_attempts = 3", "max_attempts = [3]", "max_attempts", "integer"),
    ("webhooks.toml", "timeout_seconds = 5", 'timeout_seconds = "5s"', "timeout_seconds", "number"),
    ("qa.toml", "weight = 15", 'weight = "x"', "scorecards.service.items.greeting.weight", "num"),
    # overnight shift: ends before it starts without saying so, and the reverse
    ("shifts.toml", "overnight = true\n", "", "shifts.night.overnight", "before it starts"),
    (
        "shifts.toml",
        'end = "20:00"\n',
        'end = "20:00"\novernight = true\n',
        "shifts.day.overnight",
        "does not cross midnight",
    ),
    ("shifts.toml", 'start = "08:00"', 'start = "8 am"', "shifts.day.start", "HH:MM"),
    # duplicate DTMF digit (TOML refuses the repeated key; the message still names the key)
    (
        "menu.toml",
        '"0" = "to_agent" }',
        '"0" = "to_agent", "1" = "fees" }',
        "nodes.main.options",
        "Duplicate",
    ),
    # unknown queue in a menu, unknown node, unknown overflow queue
    (
        "menu.toml",
        'queue = "fees"',
        'queue = "billing"',
        "nodes.fees.queue",
        "'billing' is not defined",
    ),
    (
        "menu.toml",
        'fallback = "to_agent"',
        'fallback = "operator"',
        "nodes.main.fallback",
        "'operator' is not defined",
    ),
    (
        "queues.toml",
        'overflow = { after_seconds = 60, to = "general" }',
        'overflow = { after_seconds = 60, to = "vip" }',
        "queues.fees.overflow.to",
        "'vip' is not defined",
    ),
    # unknown department / SLA class in the dispatch table
    (
        "dispatch.toml",
        'department = "finance"',
        'department = "accounting"',
        "categories.fees.department",
        "'accounting' is not defined",
    ),
    (
        "dispatch.toml",
        'department = "security"\n\n[categories.public_order]',
        'department = "security"\nsla = "1h"\n\n[categories.public_order]',
        "categories.access_control.sla",
        "'1h' is not defined",
    ),
    # unknown keys are refused (typos must not be ignored silently)
    (
        "queues.toml",
        "wrap_up_seconds = 60",
        "wrapup_seconds = 60",
        "queues.complaint.wrapup_seconds",
        "unknown key",
    ),
    (
        "callbacks.toml",
        'queue = "callback"',
        'queue = "nosuch"',
        "queue",
        "'nosuch' is not defined",
    ),
]


@pytest.mark.parametrize(("filename", "old", "new", "key", "words"), CASES)
def test_broken_file_is_refused_naming_file_and_key(
    config_dir: Path, filename: str, old: str, new: str, key: str, words: str
) -> None:
    edit(config_dir / filename, old, new)
    problems = problems_for(config_dir)
    assert any(p.startswith(f"{config_dir / filename}: {key}:") and words in p for p in problems), (
        problems
    )


def test_every_file_is_covered() -> None:
    assert {case[0] for case in CASES} == set(FILES)


def test_all_problems_reported_at_once(config_dir: Path) -> None:
    edit(config_dir / "menu.toml", "max_retries = 2", 'max_retries = "x"')
    edit(
        config_dir / "queues.toml",
        "ring_timeout_seconds = 15\nwrap_up_seconds = 45",
        "ring_timeout_seconds = 1\nwrap_up_seconds = 45",
    )
    problems = problems_for(config_dir)
    assert any("menu.toml: nodes.main.max_retries" in p for p in problems)
    assert any("queues.toml: queues.repair.ring_timeout_seconds" in p for p in problems)


def test_missing_file(config_dir: Path) -> None:
    (config_dir / "shifts.toml").unlink()
    assert problems_for(config_dir) == [f"{config_dir / 'shifts.toml'}: (file): not found"]


def run_cli(*args: str, config_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "CALLCENTER_CONFIG_DIR": str(config_dir),
        "CALLCENTER_STATE_DIR": str(tmp_path / "var"),
    }
    return subprocess.run(
        [sys.executable, "-m", "callcenter.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_cli(config_dir: Path, tmp_path: Path) -> None:
    ok = run_cli("check-config", config_dir=config_dir, tmp_path=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "configuration OK" in ok.stdout
    edit(config_dir / "dispatch.toml", 'department = "finance"', 'department = "accounting"')
    bad = run_cli("check-config", config_dir=config_dir, tmp_path=tmp_path)
    assert bad.returncode == 1
    assert f"{config_dir / 'dispatch.toml'}: categories.fees.department:" in bad.stderr


def test_start_refused_with_bad_config(config_dir: Path, tmp_path: Path) -> None:
    edit(config_dir / "menu.toml", 'queue = "fees"', 'queue = "billing"')
    result = run_cli("up", config_dir=config_dir, tmp_path=tmp_path)
    assert result.returncode == 1
    assert "refusing to start" in result.stderr
    assert "nodes.fees.queue" in result.stderr
    assert not (tmp_path / "var" / "callcenter.db").exists()  # nothing was started or created
