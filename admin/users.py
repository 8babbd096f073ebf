"""Users and agents: create, change, disable and re-enable, reset passwords.

Data functions are keyword-only and take a ``session`` (the caller owns the transaction);
``create`` / ``update`` / ``change_own_password`` wrap them for routes and the CLI: one
transaction, then what must follow the commit (the edge's credentials, the agent's live
routing state). Every change is in the audit log with before and after; passwords and their
hashes never are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from admin import edge
from admin.passwords import password_problems
from admin.schemas import (
    AgentCreate,
    AgentPublic,
    AgentUpdate,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from callcenter.audit import record as record_audit
from callcenter.auth import credentials_changed_now, hash_password, sip_ha1, verify_password
from callcenter.context import AppContext
from callcenter.db import transaction
from callcenter.errors import CallCenterError, Conflict, InvalidInput, NotFound, Unauthorized
from callcenter.models import Role, User
from config.loader import CenterConfig
from cti import reference_data
from cti.models import Agent, AgentQueue, Department, Team

log = logging.getLogger(__name__)


class Problems:
    """Every problem of one request, each naming its field; raised together as one 422."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field_name: str, message: str) -> None:
        self.items.append({"field": field_name, "message": message})

    def password(self, field_name: str, password: str, *, username: str) -> None:
        for message in password_problems(password, username=username):
            self.add(field_name, message)

    def raise_if_any(self) -> None:
        if self.items:
            fields = ", ".join(dict.fromkeys(p["field"] for p in self.items))
            raise InvalidInput(f"invalid input: {fields}", details={"problems": self.items})


@dataclass
class UserChange:
    """What a committed change still needs done outside SQL."""

    user_id: int
    edge_changed: bool = False  # rewrite the registrar's subscriber table
    drop_registrations: list[str] = field(default_factory=list)  # extensions to unregister
    logout_agent: int | None = None  # the agent leaves routing (disabled)
    agent_queues: tuple[int, dict[str, int]] | None = None  # live skill change
    revoked: bool = False  # credentials_changed_at moved: close the user's open sockets


# ---------------------------------------------------------------- reading


def user_public(session: Session, user: User) -> UserPublic:
    department = session.get(Department, user.department_id) if user.department_id else None
    agent = session.scalar(select(Agent).where(Agent.user_id == user.id))
    return UserPublic(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=str(user.role),
        department_id=user.department_id,
        department=department.code if department else None,
        language=user.language,
        active=user.active,
        created_at=user.created_at,
        credentials_changed_at=user.credentials_changed_at,
        agent=_agent_public(session, agent) if agent else None,
    )


def _agent_public(session: Session, agent: Agent) -> AgentPublic:
    team = session.get(Team, agent.team_id) if agent.team_id else None
    queues = {
        m.queue_code: m.skill_level
        for m in session.scalars(select(AgentQueue).where(AgentQueue.agent_id == agent.id))
    }
    return AgentPublic(
        id=agent.id,
        extension=agent.extension,
        queues=dict(sorted(queues.items())),
        team=team.name if team else None,
        shift=agent.shift_code,
        active=agent.active,
    )


def get_user(session: Session, *, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"用户不存在 / user {user_id} not found", details={"user_id": user_id})
    return user


def find_user(session: Session, *, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"用户不存在 / user {username!r} not found", details={"username": username})
    return user


def list_users(
    session: Session,
    *,
    role: Role | None = None,
    active: bool | None = None,
    department: str | None = None,
    search: str | None = None,
) -> list[UserPublic]:
    query = select(User).order_by(User.id)
    if role is not None:
        query = query.where(User.role == role)
    if active is not None:
        query = query.where(User.active.is_(active))
    if department is not None:
        query = query.join(Department, Department.id == User.department_id).where(
            Department.code == department
        )
    if search:
        pattern = f"%{search.lower()}%"
        query = query.where(
            func.lower(User.username).like(pattern) | func.lower(User.display_name).like(pattern)
        )
    return [user_public(session, user) for user in session.scalars(query)]


def snapshot(session: Session, user: User) -> dict[str, Any]:
    """The audit log's view of a user: everything but passwords and their hashes."""
    public = user_public(session, user).model_dump(mode="json")
    public.pop("created_at")
    public.pop("credentials_changed_at")
    if public["agent"] is not None:
        public["agent"].pop("id")
    return public


# ---------------------------------------------------------------- checks


def _department_id(
    session: Session, problems: Problems, role: Role, code: str | None
) -> int | None:
    if role is not Role.department:
        if code is not None:
            problems.add("department", "只有部门人员有部门 / only department staff have one")
        return None
    if code is None:
        problems.add("department", "部门人员必须有部门 / department staff need a department")
        return None
    department = session.scalar(select(Department).where(Department.code == code))
    if department is None:
        known = ", ".join(session.scalars(select(Department.code).order_by(Department.code)))
        problems.add("department", f"未知部门 {code!r} / unknown department; known: {known}")
        return None
    return department.id


def _check_agent_fields(
    problems: Problems,
    config: CenterConfig,
    *,
    queues: dict[str, int] | None,
    shift: str | None,
) -> None:
    for code, level in (queues or {}).items():
        if code not in config.queues.queues:
            known = ", ".join(sorted(config.queues.queues))
            problems.add(f"agent.queues.{code}", f"未知队列 / unknown queue; known: {known}")
        elif not 1 <= level <= 10:
            problems.add(f"agent.queues.{code}", "技能等级为 1-10 / skill level must be 1 to 10")
    if shift is not None and shift not in config.shifts.shifts:
        known = ", ".join(sorted(config.shifts.shifts))
        problems.add("agent.shift", f"未知班次 {shift!r} / unknown shift; known: {known}")


def _sip_password(
    problems: Problems, sip_password: str, *, extension: str, password: str | None
) -> None:
    problems.password("agent.sip_password", sip_password, username=extension)
    if password is not None and sip_password == password:
        problems.add(
            "agent.sip_password",
            "不能与登录密码相同 / must differ from the sign-in password",
        )


def _username_free(session: Session, username: str, *, except_id: int | None = None) -> None:
    found = session.scalar(select(User.id).where(User.username == username))
    if found is not None and found != except_id:
        raise Conflict(
            f"用户名已存在 / user name {username!r} is taken",
            details={"field": "username", "value": username},
        )


def _extension_free(session: Session, extension: str, *, except_id: int | None = None) -> None:
    found = session.scalar(select(Agent.id).where(Agent.extension == extension))
    if found is not None and found != except_id:
        raise Conflict(
            f"分机号已被使用 / extension {extension!r} is taken",
            details={"field": "agent.extension", "value": extension},
        )


def _not_last_admin(session: Session, user: User, *, field: str) -> None:
    """Nobody could administer the center any more (only the CLI could repair it)."""
    others = session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.admin, User.active.is_(True), User.id != user.id)
    )
    if not others:
        raise Conflict(
            "这是最后一个启用的管理员 / this is the last active admin: create another first",
            details={"user_id": user.id, "field": field},
        )


def _team_id(session: Session, name: str | None, actor: str) -> int | None:
    if name is None:
        return None
    team = session.scalar(select(Team).where(Team.name == name))
    if team is None:
        team = Team(name=name)
        session.add(team)
        session.flush()
        record_audit(
            session, actor=actor, action="team.create", object_type="team",
            object_id=team.id, details={"before": None, "after": {"name": name}},
        )  # fmt: skip
    return team.id


def _set_queues(session: Session, agent_id: int, queues: dict[str, int]) -> None:
    for row in session.scalars(select(AgentQueue).where(AgentQueue.agent_id == agent_id)):
        session.delete(row)
    session.flush()
    for code, level in queues.items():
        session.add(AgentQueue(agent_id=agent_id, queue_code=code, skill_level=level))


# ---------------------------------------------------------------- changing (session level)


def create_user(
    session: Session, *, config: CenterConfig, actor: str, data: UserCreate
) -> UserChange:
    problems = Problems()
    problems.password("password", data.password, username=data.username)
    department_id = _department_id(session, problems, data.role, data.department)
    if data.role is Role.agent and data.agent is None:
        problems.add(
            "agent", "坐席需要分机号和 SIP 密码 / an agent needs extension and sip_password"
        )
    if data.role is not Role.agent and data.agent is not None:
        problems.add("agent", "只有坐席有分机 / only agents have agent settings")
    agent_data: AgentCreate | None = data.agent if data.role is Role.agent else None
    if agent_data is not None:
        _sip_password(
            problems, agent_data.sip_password, extension=agent_data.extension,
            password=data.password,
        )  # fmt: skip
        _check_agent_fields(problems, config, queues=agent_data.queues, shift=agent_data.shift)
    problems.raise_if_any()
    _username_free(session, data.username)
    if agent_data is not None:
        _extension_free(session, agent_data.extension)

    user = User(
        username=data.username,
        display_name=data.display_name,
        password_hash=hash_password(data.password),
        role=data.role,
        department_id=department_id,
        language=data.language,
        active=True,
    )
    session.add(user)
    session.flush()
    change = UserChange(user.id)
    if agent_data is not None:
        agent = Agent(
            user_id=user.id,
            extension=agent_data.extension,
            sip_ha1=sip_ha1(
                agent_data.extension, config.telephony.sip_domain, agent_data.sip_password
            ),
            team_id=_team_id(session, agent_data.team, actor),
            shift_code=agent_data.shift,
            active=True,
        )
        session.add(agent)
        session.flush()
        _set_queues(session, agent.id, agent_data.queues)
        change.edge_changed = True
    session.flush()
    record_audit(
        session, actor=actor, action="user.create", object_type="user", object_id=user.id,
        details={"before": None, "after": snapshot(session, user)},
    )  # fmt: skip
    return change


def _department_for_update(
    session: Session, problems: Problems, *, user: User, data: UserUpdate,
    before: dict[str, Any], role: Role,
) -> int | None:  # fmt: skip
    """The department the user ends up in; looked up again only when role or department change."""
    sent = data.model_fields_set
    if "department" in sent:
        department_code = data.department
    else:  # kept while the role keeps one; dropped when the role changes to one without
        department_code = before["department"] if role is Role.department else None
    if "department" in sent or data.role is not None:
        return _department_id(session, problems, role, department_code)
    return user.department_id


def _check_agent_update(
    problems: Problems, config: CenterConfig, *, data: UserUpdate, agent: Agent | None,
    role: Role, extension: str,
) -> None:  # fmt: skip
    agent_data = data.agent or AgentUpdate()
    agent_sent = agent_data.model_fields_set
    if data.agent is not None and role is not Role.agent:
        problems.add("agent", "只有坐席有分机 / only agents have agent settings")
    if role is Role.agent and agent is None and not {"extension", "sip_password"} <= agent_sent:
        problems.add(
            "agent", "成为坐席需要分机号和 SIP 密码 / a new agent needs extension and sip_password"
        )
    if agent_data.sip_password is not None:
        _sip_password(
            problems, agent_data.sip_password, extension=extension, password=data.password
        )
    elif (
        "extension" in agent_sent and agent is not None and agent_data.extension != agent.extension
    ):
        # The digest HA1 covers the user name: a new extension needs the SIP password again.
        problems.add(
            "agent.sip_password",
            "更改分机号须同时设置 SIP 密码 / a new extension needs the SIP password as well",
        )
    _check_agent_fields(problems, config, queues=agent_data.queues, shift=agent_data.shift)


def _check_update_conflicts(
    session: Session, *, user: User, agent: Agent | None, data: UserUpdate, role: Role
) -> None:
    """Checks against other rows: the last active admin stays, the new extension is free."""
    if user.role is Role.admin and user.active and (role is not Role.admin or data.active is False):
        _not_last_admin(session, user, field="active" if data.active is False else "role")
    agent_data = data.agent or AgentUpdate()
    if "extension" in agent_data.model_fields_set and agent_data.extension is not None:
        _extension_free(session, agent_data.extension, except_id=agent.id if agent else None)


def _apply_user_fields(
    user: User, data: UserUpdate, *, role: Role, department_id: int | None, change: UserChange
) -> list[str]:
    """Changes the user row; returns the audit actions (password reset, enable, disable)."""
    actions: list[str] = []
    if data.display_name is not None:
        user.display_name = data.display_name
    if data.language is not None:
        user.language = data.language
    user.role = role
    user.department_id = department_id
    if data.password is not None:
        user.password_hash = hash_password(data.password)
        user.credentials_changed_at = credentials_changed_now()
        change.revoked = True
        actions.append("password_reset")
    if data.active is not None and data.active != user.active:
        user.active = data.active
        if not data.active:
            user.credentials_changed_at = credentials_changed_now()
            change.revoked = True
        actions.append("enable" if data.active else "disable")
    return actions


def _apply_agent_credentials(
    agent: Agent, agent_data: AgentUpdate, *, realm: str, change: UserChange
) -> list[str]:
    """New extension and/or SIP password; the old extension's registrations are dropped."""
    actions: list[str] = []
    old_extension = agent.extension if agent.id is not None else None
    if agent_data.extension is not None:
        agent.extension = agent_data.extension
    if agent_data.sip_password is not None:
        agent.sip_ha1 = sip_ha1(agent.extension, realm, agent_data.sip_password)
        actions.append("sip_password_reset")
        change.edge_changed = True
        if old_extension:
            change.drop_registrations.append(old_extension)
    if old_extension and old_extension != agent.extension:
        change.drop_registrations.append(old_extension)
    if old_extension is None:  # a new agent: the registrar learns the extension
        change.edge_changed = True
    return actions


def _apply_agent(
    session: Session, *, config: CenterConfig, actor: str, user: User, agent: Agent | None,
    agent_data: AgentUpdate, extension: str, change: UserChange,
) -> list[str]:  # fmt: skip
    """Creates or changes the agent row of a user whose role is agent; returns audit actions."""
    if agent is None:
        agent = Agent(user_id=user.id, extension=extension, sip_ha1="", active=True)
        session.add(agent)
    actions = _apply_agent_credentials(
        agent, agent_data, realm=config.telephony.sip_domain, change=change
    )
    agent_sent = agent_data.model_fields_set
    if "team" in agent_sent:
        agent.team_id = _team_id(session, agent_data.team, actor)
    if "shift" in agent_sent:
        agent.shift_code = agent_data.shift
    if agent.active != user.active:
        agent.active = user.active
        change.edge_changed = True
        if not agent.active:
            change.drop_registrations.append(agent.extension)
            change.logout_agent = agent.id
    session.flush()
    if agent_data.queues is not None:
        _set_queues(session, agent.id, agent_data.queues)
        change.agent_queues = (agent.id, dict(agent_data.queues))
    return actions


def _retire_agent(agent: Agent, change: UserChange) -> None:
    """No longer an agent: the extension stops registering and the agent leaves routing."""
    agent.active = False
    change.edge_changed = True
    change.drop_registrations.append(agent.extension)
    change.logout_agent = agent.id


def _audit_update(
    session: Session, *, actor: str, user: User, before: dict[str, Any], actions: list[str]
) -> None:
    after = snapshot(session, user)
    if after == before and not actions:
        return
    details: dict[str, Any] = {"before": before, "after": after}
    if "password_reset" in actions:
        details["password_changed"] = True
    if "sip_password_reset" in actions:
        details["sip_password_changed"] = True
    action = "user." + (actions[0] if len(actions) == 1 and after == before else "update")
    if actions in (["disable"], ["enable"]):
        action = f"user.{actions[0]}"
    record_audit(
        session, actor=actor, action=action, object_type="user", object_id=user.id,
        details=details,
    )  # fmt: skip


def update_user(
    session: Session, *, config: CenterConfig, actor: str, user_id: int, data: UserUpdate
) -> UserChange:
    user = get_user(session, user_id=user_id)
    before = snapshot(session, user)
    agent = session.scalar(select(Agent).where(Agent.user_id == user.id))
    role = data.role if data.role is not None else user.role
    agent_data = data.agent or AgentUpdate()
    extension = agent_data.extension or (agent.extension if agent else "")

    problems = Problems()
    if data.password is not None:
        problems.password("password", data.password, username=user.username)
    department_id = _department_for_update(
        session, problems, user=user, data=data, before=before, role=role
    )
    _check_agent_update(problems, config, data=data, agent=agent, role=role, extension=extension)
    if "active" in data.model_fields_set and data.active is None:
        problems.add("active", "必须是 true 或 false / must be true or false")
    problems.raise_if_any()
    _check_update_conflicts(session, user=user, agent=agent, data=data, role=role)

    change = UserChange(user.id)
    actions = _apply_user_fields(user, data, role=role, department_id=department_id, change=change)
    if role is Role.agent:
        actions += _apply_agent(
            session, config=config, actor=actor, user=user, agent=agent,
            agent_data=agent_data, extension=extension, change=change,
        )  # fmt: skip
    elif agent is not None and agent.active:
        _retire_agent(agent, change)
    if change.drop_registrations:
        change.edge_changed = True
    session.flush()
    _audit_update(session, actor=actor, user=user, before=before, actions=actions)
    return change


# ---------------------------------------------------------------- changing (with the context)


def create(ctx: AppContext, *, actor: str, data: UserCreate) -> UserPublic:
    try:
        with transaction(ctx.sessions) as session:
            reference_data.mirror(session, ctx.config)  # queue and shift rows the agent refers to
            change = create_user(session, config=ctx.config, actor=actor, data=data)
    except IntegrityError:  # a concurrent request took the name or extension first
        raise Conflict(
            "用户名或分机号已被使用 / user name or extension is taken",
            details={"username": data.username},
        ) from None
    follow(ctx, change, actor=actor)
    with ctx.sessions() as session:
        return user_public(session, get_user(session, user_id=change.user_id))


def update(ctx: AppContext, *, actor: str, user_id: int, data: UserUpdate) -> UserPublic:
    try:
        with transaction(ctx.sessions) as session:
            if data.agent is not None:
                reference_data.mirror(session, ctx.config)
            change = update_user(
                session, config=ctx.config, actor=actor, user_id=user_id, data=data
            )
    except IntegrityError:
        raise Conflict(
            "分机号已被使用 / extension is taken", details={"user_id": user_id}
        ) from None
    follow(ctx, change, actor=actor)
    with ctx.sessions() as session:
        return user_public(session, get_user(session, user_id=user_id))


def change_own_password(
    ctx: AppContext, *, user_id: int, current_password: str, new_password: str
) -> None:
    """A signed-in user changes their own password; their older tokens stop working."""
    with transaction(ctx.sessions) as session:
        user = get_user(session, user_id=user_id)
        if not verify_password(user.password_hash, current_password):
            raise Unauthorized("当前密码不正确 / the current password is wrong")
        problems = Problems()
        problems.password("new_password", new_password, username=user.username)
        if new_password == current_password:
            problems.add("new_password", "须与当前密码不同 / must differ from the current one")
        problems.raise_if_any()
        unchanged = snapshot(session, user)  # the password itself is never shown
        user.password_hash = hash_password(new_password)
        user.credentials_changed_at = credentials_changed_now()
        record_audit(
            session, actor=user.username, action="user.password_change", object_type="user",
            object_id=user.id,
            details={"before": unchanged, "after": unchanged, "password_changed": True},
        )  # fmt: skip
    announce_revoked(ctx, user_id)


def announce_revoked(ctx: AppContext, user_id: int) -> None:
    """Tell every API process that ``user_id``'s credentials changed: their open WebSockets
    close at once (the next HTTP request is refused by ``auth.check_user_current`` anyway)."""
    try:
        ctx.redis.publish(ctx.keys.user_revoked(user_id), "revoked")
    except Exception:
        log.warning("announcing the revocation of user %s failed", user_id, exc_info=True)


def follow(ctx: AppContext, change: UserChange, *, actor: str) -> None:
    """After the commit: the edge's credentials and the agent's live routing state.

    Failures here are logged, not raised: the change is committed, and the engine rewrites
    the subscriber table from SQL every 30 s anyway.
    """
    from cti.services import deliver, routing_for

    if change.revoked:
        announce_revoked(ctx, change.user_id)
    routing = routing_for(ctx)
    if change.logout_agent is not None and routing.agent(change.logout_agent)["state"] != (
        "logged_out"
    ):
        try:
            routing.logout(change.logout_agent, reason="disabled", actor=actor)
        except CallCenterError as exc:
            log.warning("agent %s stays in routing: %s", change.logout_agent, exc.message)
    if change.agent_queues is not None:
        agent_id, queues = change.agent_queues
        if routing.agent(agent_id)["state"] != "logged_out":
            deliver(ctx, routing.set_queues(agent_id, queues, actor=actor))
    if change.edge_changed:
        edge.follow(ctx, drop=change.drop_registrations)
