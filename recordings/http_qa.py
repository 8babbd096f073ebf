"""QA API: scorecards, evaluations (create, list, dispute), weekly trends, the weekly sample.

QA staff, shift leads and admins score and read everything; an agent reads their own
evaluations and trend and may dispute each of their evaluations once; others get 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from callcenter.auth import Principal, current_user, get_ctx, require
from callcenter.context import AppContext
from callcenter.db import utcnow, write_gate
from callcenter.errors import NotFound
from callcenter.models import Role
from config.schemas import QaFile
from cti.models import Agent
from recordings import access, qa
from recordings.errors import EVALUATION_AGENT_REQUIRED, EVALUATION_NOT_FOUND
from recordings.models import Evaluation
from recordings.schemas import (
    AgentTrend,
    DisputeCreate,
    EvaluationCreate,
    EvaluationPublic,
    SampleAgent,
    ScorecardItemPublic,
    ScorecardPublic,
    TrendWeek,
    WeeklySample,
)
from recordings.search import items_for

router = APIRouter(prefix="/qa", tags=["qa"])


def _qa_file(ctx: AppContext) -> QaFile:
    return ctx.config.qa


@router.get("/scorecards", response_model=list[ScorecardPublic], summary="Scorecards (qa.toml)")
def list_scorecards(
    ctx: Annotated[AppContext, Depends(get_ctx)],
    _principal: Annotated[Principal, Depends(require(Role.qa, Role.lead, Role.agent))],
) -> list[ScorecardPublic]:
    qa_file = _qa_file(ctx)
    return [
        ScorecardPublic(
            code=code,
            name={"zh-CN": card.name.zh, "en": card.name.en},
            default=code == qa_file.default_scorecard,
            items=[
                ScorecardItemPublic(
                    code=item_code,
                    name={"zh-CN": item.name.zh, "en": item.name.en},
                    weight=item.weight,
                    max_score=item.max_score,
                    phrases=list(item.phrases),
                    guidance=item.guidance,
                )
                for item_code, item in card.items.items()
            ],
        )
        for code, card in qa_file.scorecards.items()
    ]


@router.post(
    "/evaluations",
    response_model=EvaluationPublic,
    status_code=201,
    summary="Score a recording; 422 names every wrong item",
)
def create_evaluation(
    body: EvaluationCreate,
    request: Request,
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(require(Role.qa, Role.lead))],
) -> EvaluationPublic:
    qa_file = _qa_file(ctx)
    with write_gate(ctx.engine), ctx.sessions() as session, session.begin():
        evaluation = qa.evaluate(
            session,
            qa_file,
            principal,
            recording_id=body.recording_id,
            scorecard=body.scorecard or qa_file.default_scorecard,
            scores=body.scores,
            comment=body.comment,
            remote_addr=request.client.host if request.client else None,
        )
        return EvaluationPublic(**qa.public(session, evaluation))


@router.get(
    "/evaluations",
    response_model=list[EvaluationPublic],
    summary="Evaluations, newest first (an agent: their own)",
)
def list_evaluations(
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(current_user)],
    agent: Annotated[str | None, Query(description="agent extension")] = None,
    since: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[EvaluationPublic]:
    with ctx.sessions() as session:
        agent_id = qa.viewed_agent(session, principal, agent)
        rows = qa.evaluations(session, agent_id=agent_id, since=since, limit=limit)
        return [EvaluationPublic(**qa.public(session, row)) for row in rows]


@router.get("/evaluations/{evaluation_id}", response_model=EvaluationPublic)
def get_evaluation(
    evaluation_id: int,
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(current_user)],
) -> EvaluationPublic:
    scope = access.search_scope(principal)
    with ctx.sessions() as session:
        evaluation = session.get(Evaluation, evaluation_id)
        if evaluation is None or (scope is not None and evaluation.agent_id != scope):
            raise NotFound(f"evaluation {evaluation_id} not found", error_id=EVALUATION_NOT_FOUND)
        return EvaluationPublic(**qa.public(session, evaluation))


@router.post(
    "/evaluations/{evaluation_id}/dispute",
    response_model=EvaluationPublic,
    summary="The evaluated agent disputes an evaluation (once)",
)
def dispute_evaluation(
    evaluation_id: int,
    body: DisputeCreate,
    request: Request,
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(current_user)],
) -> EvaluationPublic:
    with write_gate(ctx.engine), ctx.sessions() as session, session.begin():
        evaluation = qa.dispute(
            session,
            principal,
            evaluation_id,
            body.reason,
            request.client.host if request.client else None,
        )
        return EvaluationPublic(**qa.public(session, evaluation))


@router.get(
    "/trend",
    response_model=AgentTrend,
    summary="An agent's evaluations per ISO week: count and mean total (an agent: their own)",
)
def agent_trend(
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(current_user)],
    agent: Annotated[str | None, Query(description="agent extension")] = None,
    weeks: Annotated[int, Query(ge=1, le=104)] = 8,
) -> AgentTrend:
    with ctx.sessions() as session:
        agent_id = qa.viewed_agent(session, principal, agent)
        if agent_id is None:
            raise NotFound("name an agent: ?agent=<extension>", error_id=EVALUATION_AGENT_REQUIRED)
        extension = session.scalar(select(Agent.extension).where(Agent.id == agent_id)) or ""
        rows = qa.trend(
            session, agent_id=agent_id, weeks=weeks, zone=ctx.settings.timezone, now=utcnow()
        )
    return AgentTrend(agent=extension, weeks=[TrendWeek(**row) for row in rows])


@router.get(
    "/sample",
    response_model=WeeklySample,
    summary="A reproducible random sample of each agent's answered calls of an ISO week",
)
def weekly_sample(
    ctx: Annotated[AppContext, Depends(get_ctx)],
    _principal: Annotated[Principal, Depends(require(Role.qa, Role.lead))],
    week: Annotated[str, Query(description="ISO week, e.g. 2026-W49")],
    per_agent: Annotated[int | None, Query(ge=1, le=100)] = None,
) -> WeeklySample:
    settings = _qa_file(ctx).sample
    count = per_agent or settings.per_agent
    with ctx.sessions() as session:
        samples = qa.weekly_sample(
            session,
            week=week,
            per_agent=count,
            min_seconds=settings.min_answered_seconds,
            zone=ctx.settings.timezone,
        )
        agents = [
            SampleAgent(
                agent=sample.agent,
                candidates=sample.candidates,
                recordings=items_for(session, sample.recording_ids),
            )
            for sample in samples
        ]
    return WeeklySample(
        week=week,
        per_agent=count,
        min_answered_seconds=settings.min_answered_seconds,
        agents=agents,
    )
