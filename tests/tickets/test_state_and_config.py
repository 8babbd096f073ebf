"""The state machine on its own (every path through allowed steps ends archived; every other
step is refused) and the validation of webhooks.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.errors import Conflict, InvalidInput
from config.loader import ConfigError, load_config
from config.settings import DEFAULT_CONFIG_DIR
from ticketing.state import REQUIRED_FIELDS, Status, allowed_next, check_transition

FIELDS = {
    "assignee": "王师傅",
    "done": "修好",
    "materials": "无",
    "minutes_spent": 5,
    "result": "satisfied",
}


@settings(max_examples=200, deadline=None)
@given(
    track=st.sampled_from(["general", "urgent", "emergency"]),
    choices=st.lists(st.integers(min_value=0, max_value=7), min_size=12, max_size=12),
    callback_required=st.booleans(),
    wrong=st.sampled_from(list(Status)),
)
def test_allowed_steps_reach_archived_and_others_are_refused(
    track: str, choices: list[int], callback_required: bool, wrong: Status
) -> None:
    status = Status.registered
    for choice in choices:
        allowed = allowed_next(status, track, callback_required=callback_required)
        if not allowed:
            break
        if wrong not in allowed:
            with pytest.raises(Conflict) as refused:
                check_transition(status, wrong, track, FIELDS, callback_required=callback_required)
            assert refused.value.details["allowed"] == allowed
        target = allowed[choice % len(allowed)]
        check_transition(status, target, track, FIELDS, callback_required=callback_required)
        status = target
    assert status is Status.archived


@pytest.mark.parametrize(("target", "fields"), list(REQUIRED_FIELDS.items()))
def test_each_required_field_is_named(target: Status, fields: tuple[str, ...]) -> None:
    before = {
        Status.assigned: Status.dispatched,
        Status.resolved: Status.on_site,
        Status.callback: Status.returned_to_front_desk,
    }[target]
    for missing in fields:
        given_fields = {k: v for k, v in FIELDS.items() if k != missing}
        with pytest.raises(InvalidInput) as refused:
            check_transition(before, target, "general", given_fields)
        assert refused.value.details["field"] == missing


def test_general_track_returns_to_the_supervisor_first() -> None:
    assert allowed_next(Status.resolved, "general") == [Status.returned_to_supervisor]
    assert Status.returned_to_front_desk in allowed_next(Status.resolved, "emergency")
    assert allowed_next(Status.callback, "general", callback_result="unsatisfied") == [
        Status.dispatched
    ]


def test_webhooks_file_is_validated_with_file_and_key(tmp_path: Path) -> None:
    directory = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, directory)
    (directory / "webhooks.toml").write_text(
        '[targets.erp]\nurl = "ftp://example"\nsecret = "short"\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError) as error:
        load_config(directory)
    problems = "\n".join(error.value.problems)
    assert "webhooks.toml: targets.erp.url" in problems
    assert "webhooks.toml: targets.erp.secret" in problems
    assert load_config(DEFAULT_CONFIG_DIR).webhooks.targets == {}
