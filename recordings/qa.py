"""QA evaluations: scoring a recording, listing and trends per agent, one dispute per
evaluation, and the reproducible weekly sample of calls to score."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.audit import record as record_audit
from callcenter.auth import Principal
from callcenter.db import utcnow
from callcenter.errors import Forbidden, InvalidInput, NotFound
from callcenter.models import Role, User
from config.schemas import QaFile
from cti.models import Agent, Call
from recordings import access, scorecards
from recordings.errors import (
    EVALUATION_AGENT_REQUIRED,
    EVALUATION_BAD_WEEK,
    EVALUATION_FORBIDDEN,
    EVALUATION_NOT_FOUND,
    RECORDING_NOT_FOUND,
    AlreadyDisputed,
)
from recordings.models import Evaluation, Recording

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def week_bounds(week: str, zone: str) -> tuple[datetime, datetime]:
    """[Monday 00:00, next Monday 00:00) of an ISO week in the center's time zone, as UTC."""
    match = _WEEK.match(week)
    try:
        if match is None:
            raise ValueError
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        raise InvalidInput(
            f"week {week!r}: expected an ISO week like 2026-W49",
            details={"field": "week"},
            error_id=EVALUATION_BAD_WEEK,
        ) from None
    start = datetime.combine(monday, datetime.min.time(), ZoneInfo(zone))
    return start.astimezone(UTC), (start + timedelta(days=7)).astimezone(UTC)


def week_of(moment: datetime, zone: str) -> str:
    year, week, _ = moment.astimezone(ZoneInfo(zone)).isocalendar()
    return f"{year}-W{week:02d}"


def agent_id_for(session: Session, extension: str) -> int:
    found = session.scalar(select(Agent.id).where(Agent.extension == extension))
    if found is None:
        raise NotFound(f"agent {extension!r} not found", error_id=EVALUATION_AGENT_REQUIRED)
    return found


def viewed_agent(session: Session, principal: Principal, extension: str | None) -> int | None:
    """The agent whose evaluations are read: an agent reads only their own."""
    scope = access.search_scope(principal)
    if scope is not None:
        if extension is not None and agent_id_for(session, extension) != scope:
            raise Forbidden(
                "an agent may read only their own evaluations", error_id=EVALUATION_FORBIDDEN
            )
        return scope
    return agent_id_for(session, extension) if extension else None


def evaluate(
    session: Session,
    qa: QaFile,
    principal: Principal,
    *,
    recording_id: str,
    scorecard: str,
    scores: dict[str, Any],
    comment: str | None,
    remote_addr: str | None,
) -> Evaluation:
    card = scorecards.card(qa, scorecard)
    result = scorecards.total(card, scores)
    recording = session.get(Recording, recording_id)
    if recording is None or recording.deleted_at is not None:
        raise NotFound(f"recording {recording_id!r} not found", error_id=RECORDING_NOT_FOUND)
    agent_id = recording.agent_id
    if agent_id is None:
        call = session.get(Call, recording.call_id)
        agent_id = call.agent_id if call else None
    evaluation = Evaluation(
        recording_id=recording_id,
        agent_id=agent_id,
        evaluator_id=principal.user_id,
        scorecard=scorecard,
        scores=dict(scores),
        total=result,
        comment=comment,
        created_at=utcnow(),
    )
    session.add(evaluation)
    if recording.qa_status != "disputed":
        recording.qa_status = "scored"
    session.flush()
    record_audit(
        session,
        actor=principal.username,
        action="evaluation.created",
        object_type="evaluation",
        object_id=evaluation.id,
        details={"recording_id": recording_id, "scorecard": scorecard, "total": result},
        remote_addr=remote_addr,
    )
    return evaluation


def dispute(
    session: Session,
    principal: Principal,
    evaluation_id: int,
    reason: str,
    remote_addr: str | None,
) -> Evaluation:
    evaluation = session.get(Evaluation, evaluation_id)
    if evaluation is None:
        raise NotFound(f"evaluation {evaluation_id} not found", error_id=EVALUATION_NOT_FOUND)
    if principal.role is not Role.agent or principal.agent_id != evaluation.agent_id:
        if principal.role is Role.agent:
            raise NotFound(f"evaluation {evaluation_id} not found", error_id=EVALUATION_NOT_FOUND)
        raise Forbidden(
            "only the evaluated agent may dispute an evaluation", error_id=EVALUATION_FORBIDDEN
        )
    if evaluation.disputed_at is not None:
        raise AlreadyDisputed(
            f"evaluation {evaluation_id} was already disputed on {evaluation.disputed_at:%Y-%m-%d}",
            details={"disputed_at": evaluation.disputed_at.isoformat()},
        )
    evaluation.disputed_at = utcnow()
    evaluation.dispute_reason = reason
    recording = session.get(Recording, evaluation.recording_id)
    if recording is not None:
        recording.qa_status = "disputed"
    record_audit(
        session,
        actor=principal.username,
        action="evaluation.disputed",
        object_type="evaluation",
        object_id=evaluation_id,
        details={"reason": reason, "recording_id": evaluation.recording_id},
        remote_addr=remote_addr,
    )
    return evaluation


def public(session: Session, evaluation: Evaluation) -> dict[str, Any]:
    extension = (
        session.scalar(select(Agent.extension).where(Agent.id == evaluation.agent_id))
        if evaluation.agent_id is not None
        else None
    )
    evaluator = session.scalar(select(User.username).where(User.id == evaluation.evaluator_id))
    recording = session.get(Recording, evaluation.recording_id)
    return {
        "id": evaluation.id,
        "recording_id": evaluation.recording_id,
        "call_id": recording.call_id if recording else None,
        "agent": extension,
        "evaluator": evaluator,
        "scorecard": evaluation.scorecard,
        "scores": evaluation.scores,
        "total": evaluation.total,
        "comment": evaluation.comment,
        "created_at": evaluation.created_at,
        "disputed_at": evaluation.disputed_at,
        "dispute_reason": evaluation.dispute_reason,
    }


def evaluations(
    session: Session, *, agent_id: int | None, since: datetime | None, limit: int
) -> list[Evaluation]:
    query = select(Evaluation)
    if agent_id is not None:
        query = query.where(Evaluation.agent_id == agent_id)
    if since is not None:
        query = query.where(Evaluation.created_at >= since)
    return list(
        session.scalars(
            query.order_by(Evaluation.created_at.desc(), Evaluation.id.desc()).limit(limit)
        )
    )


def trend(
    session: Session, *, agent_id: int, weeks: int, zone: str, now: datetime
) -> list[dict[str, Any]]:
    """Per ISO week (oldest first, the last ``weeks`` weeks, empty weeks included): the count
    and the mean total of the agent's evaluations."""
    this_monday = now.astimezone(ZoneInfo(zone)).date() - timedelta(
        days=now.astimezone(ZoneInfo(zone)).weekday()
    )
    labels = [
        week_of(
            datetime.combine(
                this_monday - timedelta(weeks=back), datetime.min.time(), ZoneInfo(zone)
            ),
            zone,
        )
        for back in range(weeks - 1, -1, -1)
    ]
    start, _ = week_bounds(labels[0], zone)
    totals: dict[str, list[float]] = defaultdict(list)
    for created_at, result in session.execute(
        select(Evaluation.created_at, Evaluation.total).where(
            Evaluation.agent_id == agent_id, Evaluation.created_at >= start
        )
    ):
        totals[week_of(created_at, zone)].append(result)
    return [
        {
            "week": label,
            "count": len(totals[label]),
            "average": round(sum(totals[label]) / len(totals[label]), 1) if totals[label] else None,
        }
        for label in labels
    ]


@dataclass(frozen=True)
class AgentSample:
    agent: str
    candidates: int
    recording_ids: list[str]


def weekly_sample(
    session: Session, *, week: str, per_agent: int, min_seconds: float, zone: str
) -> list[AgentSample]:
    """Per agent, ``per_agent`` answered calls of the week at least ``min_seconds`` long,
    drawn at random with a generator seeded by the week and the agent: the same week always
    gives the same sample (while its recordings are the same)."""
    start, end = week_bounds(week, zone)
    rows = session.execute(
        select(Agent.extension, Recording.id)
        .join(Agent, Agent.id == Recording.agent_id)
        .join(Call, Call.id == Recording.call_id)
        .where(
            Recording.deleted_at.is_(None),
            Recording.started_at >= start,
            Recording.started_at < end,
            Recording.duration_seconds >= min_seconds,
            Call.answered_at.is_not(None),
        )
        .order_by(Agent.extension, Recording.id)
    )
    by_agent: dict[str, list[str]] = defaultdict(list)
    for extension, recording_id in rows:
        by_agent[extension].append(recording_id)
    samples = []
    for extension, candidates in sorted(by_agent.items()):
        rng = random.Random(f"qa-sample:{week}:{extension}")
        chosen = rng.sample(candidates, min(per_agent, len(candidates)))
        samples.append(AgentSample(extension, len(candidates), sorted(chosen)))
    return samples
