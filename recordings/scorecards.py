"""Scoring a call on a scorecard from qa.toml: pure functions, no I/O.

Every item of the card must be scored, each from 0 to its ``max_score``; the total is the
weighted mean of ``score / max_score`` as a percentage, rounded to one decimal.
"""

from __future__ import annotations

from collections.abc import Mapping

from config.schemas import QaFile, Scorecard
from recordings.errors import InvalidScores


def card(qa: QaFile, code: str) -> Scorecard:
    found = qa.scorecards.get(code)
    if found is None:
        raise InvalidScores(
            f"scorecard {code!r} is not defined; known: {', '.join(sorted(qa.scorecards))}",
            details={"field": "scorecard", "known": sorted(qa.scorecards)},
        )
    return found


def total(scorecard: Scorecard, scores: Mapping[str, object]) -> float:
    """The weighted total (0-100); InvalidScores naming every item that is wrong."""
    problems: dict[str, str] = {}
    for given in scores:
        if given not in scorecard.items:
            problems[given] = "not an item of this scorecard"
    numbers: dict[str, float] = {}
    for code, item in scorecard.items.items():
        if code not in scores:
            problems[code] = "missing: every item must be scored"
            continue
        value = scores[code]
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems[code] = f"must be a number from 0 to {item.max_score}"
        elif not 0 <= value <= item.max_score:
            problems[code] = f"{value} is out of range 0..{item.max_score}"
        else:
            numbers[code] = float(value)
    if problems:
        named = "; ".join(f"scores.{code}: {why}" for code, why in sorted(problems.items()))
        raise InvalidScores(f"invalid scores: {named}", details={"items": problems})
    weights = sum(item.weight for item in scorecard.items.values())
    earned = sum(
        item.weight * numbers[code] / item.max_score for code, item in scorecard.items.items()
    )
    return round(100 * earned / weights, 1)
