"""``POST /api/v1/whatif``: run the what-if simulator (metrics/whatif.py) for one or two
staffing plans over the same day's callers, so a lead can compare them side by side.

Leads and admins only. A day takes a few seconds of one worker thread (2,000 callers: about
4 s on the 2-core reference machine), so at most two plans and a bounded volume per request.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from callcenter.auth import Principal, get_ctx, require
from callcenter.context import AppContext
from callcenter.models import Role
from metrics.live_config import metric_config
from metrics.whatif import simulate
from metrics.whatif_inputs import PlanFile, stored_arrivals, synthetic_arrivals

router = APIRouter(tags=["metrics"])


class WhatIfRequest(BaseModel):
    day: date | None = Field(
        default=None, description="replay this stored local day; omitted: the built-in day"
    )
    seed: int = Field(default=1, ge=0, le=2**31)
    volume: float = Field(default=1.0, gt=0, le=5, description="built-in day: volume factor")
    plans: list[PlanFile] = Field(min_length=1, max_length=2)


class WhatIfResponse(BaseModel):
    calls: int
    results: list[dict[str, Any]]


@router.post(
    "/whatif",
    response_model=WhatIfResponse,
    summary="What-if: a day's callers against one or two staffing plans (real routing rules)",
)
def run_whatif(
    body: WhatIfRequest,
    ctx: Annotated[AppContext, Depends(get_ctx)],
    _who: Annotated[Principal, Depends(require(Role.lead, Role.admin))],
) -> WhatIfResponse:
    timezone = ctx.settings.timezone
    if body.day is not None:
        day = body.day
        arrivals = stored_arrivals(ctx, day, seed=body.seed)
    else:
        day = date(2026, 1, 5)  # a fixed Monday: the built-in day does not depend on today
        arrivals = synthetic_arrivals(day, timezone, seed=body.seed, volume=body.volume)
    results = [
        simulate(
            ctx.redis, ctx.config, metric_config(ctx), plan, arrivals, day=day, timezone=timezone
        )
        for plan in body.plans
    ]
    return WhatIfResponse(calls=len(arrivals), results=results)
