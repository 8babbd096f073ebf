"""``POST /api/v1/auth/token`` and ``GET /api/v1/me``."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from callcenter.auth import Principal, client_address, current_user, get_ctx, issue_token
from callcenter.context import AppContext
from callcenter.errors import InvalidInput
from callcenter.signin import sign_in

router = APIRouter(tags=["auth"])


class TokenRequest(BaseModel):
    username: str
    password: str


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str
    username: str


class MePublic(BaseModel):
    id: int
    username: str
    role: str
    agent_id: int | None
    department_id: int | None


@router.post(
    "/auth/token",
    response_model=TokenPublic,
    summary="Exchange user name and password for a bearer token",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": TokenRequest.model_json_schema()},
                "application/x-www-form-urlencoded": {"schema": TokenRequest.model_json_schema()},
            },
            "required": True,
        }
    },
)
async def create_token(
    request: Request, ctx: Annotated[AppContext, Depends(get_ctx)]
) -> TokenPublic:
    """Accepts JSON ``{"username", "password"}`` or an OAuth2 password form."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/json"):
            body = TokenRequest.model_validate(json.loads(await request.body() or b"{}"))
        else:
            form = await request.form()
            body = TokenRequest.model_validate(dict(form))
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        raise InvalidInput(
            f"username and password are required: {', '.join(fields)}",
            details={"fields": fields},
        ) from None
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise InvalidInput(
            "the request body is not a JSON object with username and password",
            details={"field": "body"},
        ) from None
    # argon2, SQL and Redis: in a worker thread, so the event loop keeps serving meanwhile.
    user = await run_in_threadpool(
        sign_in, ctx, body.username, body.password, client_address(request)
    )
    ttl = ctx.settings.token_ttl_seconds
    return TokenPublic(
        access_token=issue_token(ctx.settings.secret_key, user, ttl),
        expires_in=ttl,
        role=str(user.role),
        username=user.username,
    )


@router.get("/me", response_model=MePublic, summary="The signed-in user")
def me(principal: Annotated[Principal, Depends(current_user)]) -> MePublic:
    return MePublic(
        id=principal.user_id,
        username=principal.username,
        role=str(principal.role),
        agent_id=principal.agent_id,
        department_id=principal.department_id,
    )
