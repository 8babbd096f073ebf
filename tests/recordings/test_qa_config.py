"""qa.toml (scorecards) and the recording retention keys of queues.toml are validated at load,
each problem named as ``file: dotted.key: problem``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from config.loader import ConfigError, load_config
from config.settings import DEFAULT_CONFIG_DIR


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    return target


def _problems(directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(directory)
    return caught.value.problems


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_default_scorecard_carries_the_courtesy_phrases() -> None:
    qa = load_config(DEFAULT_CONFIG_DIR).qa
    card = qa.scorecards[qa.default_scorecard]
    assert set(card.items) == {
        "greeting",
        "identify_caller",
        "understanding",
        "accuracy",
        "resolution",
        "tone",
        "closing",
    }
    assert "有什么事我可以帮您吗？" in card.items["greeting"].phrases
    assert "对不起，请您再说一遍。" in card.items["understanding"].phrases
    assert all(item.weight > 0 for item in card.items.values())


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        ("weight = 15\n", "weight = 0\n", "scorecards.service.items.greeting.weight", "greater"),
        ("weight = 15\n", "", "scorecards.service.items.greeting.weight", "required"),
        ("max_score = 5\n", "max_score = 0\n", "scorecards.service.items.greeting.max_score", ""),
        ('default_scorecard = "service"', 'default_scorecard = "x"', "default_scorecard", "'x'"),
        (
            "min_answered_seconds = 30",
            "min_answered_seconds = -1",
            "sample.min_answered_seconds",
            "",
        ),
        ("guidance = ", "guidanse = ", "scorecards.service.items.greeting.guidanse", "unknown key"),
    ],
)
def test_bad_qa_file_names_file_and_key(
    config_dir: Path, old: str, new: str, key: str, words: str
) -> None:
    _edit(config_dir / "qa.toml", old, new)
    problems = _problems(config_dir)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{config_dir / 'qa.toml'}: {key}: "), problems
    assert words in problems[0]


def test_missing_qa_file_is_reported(config_dir: Path) -> None:
    (config_dir / "qa.toml").unlink()
    assert _problems(config_dir) == [f"{config_dir / 'qa.toml'}: (file): not found"]


def test_bad_retention_days_names_the_queue(config_dir: Path) -> None:
    _edit(
        config_dir / "queues.toml",
        "recording_retention_days = 730",
        "recording_retention_days = 0",
    )
    problems = _problems(config_dir)
    assert problems[0].startswith(
        f"{config_dir / 'queues.toml'}: queues.complaint.recording_retention_days: "
    )
