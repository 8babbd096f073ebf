"""An automatic satisfaction survey call as a voice menu: ask for one key, thank, hang up.
Free of pjsua2; the slot runs it like any menu (``ivr/menu.py``)."""

from __future__ import annotations

import re
from typing import Any

from config.schemas import CollectNode, HangupNode, MenuFile, Prompt
from ivr.menu import MenuRunner
from ivr.prompts import PromptFile

SURVEY_DIGIT_SECONDS = 8.0  # a survey waits this long for the key after its prompt
SURVEY_RETRIES = 2  # a missing or invalid key replays the survey prompt this many times


def survey_runner(
    survey: dict[str, Any],
    question: PromptFile,
    thanks: PromptFile,
    durations: dict[str, float],
) -> MenuRunner:
    """The survey as a two-node menu (ask for one key, thank), run by the menu runner.
    ``survey`` is the originate command's object (digits, variable); ValueError if invalid."""
    digits = str(survey.get("digits", ""))
    if not re.fullmatch(r"[0-9*#]{1,12}", digits):
        raise ValueError(f"survey.digits {digits!r} must be 1-12 keys among 0-9 * #")
    pattern = "^[" + "".join(re.escape(d) for d in digits) + "]$"
    menu = MenuFile(
        entry="survey",
        nodes={
            "survey": CollectNode(
                kind="collect",
                prompt=Prompt(text="survey"),
                variable=str(survey.get("variable") or "satisfaction"),
                pattern=pattern,
                max_digits=1,
                terminator="",
                first_digit_timeout=SURVEY_DIGIT_SECONDS,
                max_retries=SURVEY_RETRIES,
                next="survey_thanks",
                fallback="survey_end",
            ),
            "survey_thanks": HangupNode(kind="hangup", prompt=Prompt(text="thanks")),
            "survey_end": HangupNode(kind="hangup"),  # no key: system.goodbye
        },
    )
    durations = {
        **durations,
        "survey.prompt": question.duration,
        "survey_thanks.prompt": thanks.duration,
    }
    return MenuRunner(menu, durations)
