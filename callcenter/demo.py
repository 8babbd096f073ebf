"""Demo data (``callcenter seed-demo``; run by ``up`` on an empty database).

Hotline 4008001234, 12 agents 1001-1012 (password ``pw`` + extension for sign-in and SIP),
shift lead ``lead1``, QA ``qa1``, admin ``admin`` (password ``pw`` + user name), one staff user
per department, the seed's departments, and a few hundred customers with units and numbers,
among them 13800138000. Deterministic: the same data every run.
"""

from __future__ import annotations

import ipaddress
import random
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.auth import hash_password, sip_ha1
from callcenter.context import AppContext
from callcenter.models import Role, User
from config.settings import DEMO_SECRET, Settings
from cti import reference_data
from cti.models import (
    Agent,
    AgentQueue,
    Customer,
    CustomerPhone,
    CustomerUnit,
    Department,
    DepartmentContact,
    FeeStatus,
    Team,
    Unit,
)
from cti.numbers import kind as number_kind

AGENT_EXTENSIONS = [str(n) for n in range(1001, 1013)]
DEMO_CUSTOMER_NUMBER = "13800138000"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华慧巧美淑惠珠翠雅芝玉萍红娥玲芬燕彩春菊兰凤洁梅琳素云莲真环雪荣爱妹霞香月莺媛艳瑞凡佳嘉琼勤珍贞莉桂娣叶璧璐娅琦晶妍茜秋珊莎锦黛青倩婷姣婉娴瑾颖露瑶怡婵雁蓓纨仪荷丹蓉眉君琴蕊薇菁梦岚苑婕馨瑗琰韵融园艺咏卿聪澜纯毓悦昭冰爽琬茗羽希宁欣飘育滢馥筠柔竹霭凝晓欢霄枫芸菲寒伊亚宜可姬舒影荔枝思丽"
AREA_CODES = ["021", "010", "022", "0571", "0755"]

# Which queues each agent serves (skill level 1-10), and their shift: a plausible first roster.
ROSTER: dict[str, tuple[str, dict[str, int]]] = {
    "1001": ("day", {"general": 7, "repair": 9, "callback": 5}),
    "1002": ("day", {"general": 6, "repair": 8, "callback": 5}),
    "1003": ("day", {"general": 6, "complaint": 9, "callback": 5}),
    "1004": ("day", {"general": 5, "fees": 8, "callback": 5}),
    "1005": ("mid", {"general": 6, "repair": 6, "complaint": 6}),
    "1006": ("mid", {"general": 5, "repair": 7, "fees": 5}),
    "1007": ("mid", {"general": 8, "complaint": 8, "callback": 6}),
    "1008": ("mid", {"general": 5, "fees": 7, "repair": 5}),
    "1009": ("day", {"general": 4, "repair": 5, "complaint": 5}),
    "1010": ("night", {"general": 6, "repair": 6, "complaint": 6, "fees": 6}),
    "1011": ("night", {"general": 6, "repair": 6, "complaint": 6, "fees": 6}),
    "1012": ("night", {"general": 5, "repair": 5, "complaint": 5, "fees": 5, "callback": 5}),
}

DEPARTMENT_STAFF = {
    "cs_assistant": "csa1",
    "engineering": "eng1",
    "security": "sec1",
    "environment": "env1",
    "finance": "fin1",
}


def demo_password(username: str) -> str:
    return f"pw{username}"


def sync_reference_data(session: Session, ctx: AppContext) -> None:
    """Mirror queues, shifts and departments from the config files into SQL (idempotent)."""
    reference_data.mirror(session, ctx.config)


def is_empty(session: Session) -> bool:
    return (session.scalar(select(func.count()).select_from(User)) or 0) == 0


def _user(
    session: Session, username: str, display: str, role: Role, department_id: int | None = None
) -> User:
    user = User(
        username=username,
        display_name=display,
        password_hash=hash_password(demo_password(username)),
        role=role,
        department_id=department_id,
    )
    session.add(user)
    session.flush()
    return user


def seed_demo(ctx: AppContext) -> bool:
    """Insert the demo data unless users already exist; returns True when it seeded."""
    realm = ctx.config.telephony.sip_domain
    with ctx.sessions() as session, session.begin():
        sync_reference_data(session, ctx)
        if not is_empty(session):
            return False
        departments = {d.code: d for d in session.scalars(select(Department))}
        _user(session, "admin", "系统管理员", Role.admin)
        lead = _user(session, "lead1", "客服班长 李娜", Role.lead)
        _user(session, "qa1", "质检专员 王芳", Role.qa)
        for code, username in DEPARTMENT_STAFF.items():
            dept = departments[code]
            staff = _user(session, username, f"{dept.name_zh}主管", Role.department, dept.id)
            session.add(
                DepartmentContact(
                    department_id=dept.id,
                    role="supervisor",
                    name=staff.display_name,
                    user_id=staff.id,
                    phone=f"139{dept.id:08d}",
                )
            )
            session.add(
                DepartmentContact(
                    department_id=dept.id,
                    role="manager",
                    name=f"{dept.name_zh}经理",
                    phone=f"137{dept.id:08d}",
                    rank=1,
                )
            )
        for dept in departments.values():
            if dept.external:
                session.add(
                    DepartmentContact(
                        department_id=dept.id,
                        role="supervisor",
                        name=f"{dept.name_zh}调度",
                        phone=f"136{dept.id:08d}",
                    )
                )
                session.add(
                    DepartmentContact(
                        department_id=dept.id,
                        role="manager",
                        name=f"{dept.name_zh}经理",
                        phone=f"135{dept.id:08d}",
                        rank=1,
                    )
                )
        leadership = departments["cs_assistant"]
        session.add(
            DepartmentContact(
                department_id=leadership.id,
                role="leadership",
                name="物业公司经理",
                phone="13300000001",
                rank=2,
            )
        )
        team = Team(name="客服一组", lead_user_id=lead.id)
        session.add(team)
        session.flush()
        rng = random.Random(20261129)
        for extension in AGENT_EXTENSIONS:
            name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
            user = _user(session, extension, f"客服专员 {name}", Role.agent)
            shift_code, queues = ROSTER[extension]
            agent = Agent(
                user_id=user.id,
                extension=extension,
                sip_ha1=sip_ha1(extension, realm, demo_password(extension)),
                team_id=team.id,
                shift_code=shift_code,
            )
            session.add(agent)
            session.flush()
            for queue_code, level in queues.items():
                session.add(AgentQueue(agent_id=agent.id, queue_code=queue_code, skill_level=level))
        _seed_customers(session, rng)
    return True


def _seed_customers(session: Session, rng: random.Random, count: int = 300) -> None:
    used_numbers: set[str] = {DEMO_CUSTOMER_NUMBER}
    first = Customer(
        name="张伟",
        kind="owner",
        member=True,
        fee_status=FeeStatus.arrears,
        arrears_amount=Decimal("1280.00"),
        notes="演示客户 / demo customer",
    )
    unit = Unit(code="3-2-1201", building="3", entrance="2", room="1201")
    session.add_all([first, unit])
    session.flush()
    session.add(CustomerPhone(customer_id=first.id, number=DEMO_CUSTOMER_NUMBER, kind="mobile"))
    session.add(CustomerPhone(customer_id=first.id, number="02161234567", kind="landline"))
    session.add(CustomerUnit(customer_id=first.id, unit_id=unit.id, relation="owner"))
    units_used = {"3-2-1201"}
    for _ in range(count - 1):
        customer_kind = rng.choices(["owner", "tenant", "shop"], weights=[80, 15, 5])[0]
        arrears = rng.random() < 0.12
        customer = Customer(
            name=rng.choice(SURNAMES)
            + rng.choice(GIVEN)
            + (rng.choice(GIVEN) if rng.random() < 0.6 else ""),
            kind=customer_kind,
            member=customer_kind == "owner" and rng.random() < 0.7,
            fee_status=FeeStatus.arrears if arrears else FeeStatus.paid,
            arrears_amount=Decimal(rng.randrange(100, 5000)) if arrears else Decimal("0"),
        )
        session.add(customer)
        session.flush()
        while True:
            if customer_kind == "shop":
                code = f"S-{rng.randint(1, 40):02d}"
                building, entrance, room = "商铺", "-", code[2:]
            else:
                building, entrance = str(rng.randint(1, 18)), str(rng.randint(1, 4))
                room = f"{rng.randint(1, 28)}{rng.randint(1, 4):02d}"
                code = f"{building}-{entrance}-{room}"
            if code not in units_used:
                units_used.add(code)
                break
        unit = Unit(
            code=code,
            building=building,
            entrance=entrance,
            room=room,
            kind="shop" if customer_kind == "shop" else "residence",
        )
        session.add(unit)
        session.flush()
        session.add(CustomerUnit(customer_id=customer.id, unit_id=unit.id, relation=customer_kind))
        for is_landline in [False, True] if rng.random() < 0.25 else [rng.random() < 0.15]:
            while True:
                if is_landline:
                    area = rng.choice(AREA_CODES)
                    number = (
                        area
                        + str(rng.randint(2, 8))
                        + "".join(rng.choice("0123456789") for _ in range(7))
                    )
                else:
                    number = rng.choice(["13", "15", "17", "18", "19"]) + "".join(
                        rng.choice("0123456789") for _ in range(9)
                    )
                if number not in used_numbers:
                    used_numbers.add(number)
                    break
            session.add(
                CustomerPhone(customer_id=customer.id, number=number, kind=number_kind(number))
            )


FIRST_ADMIN_HINT = (
    "create the first admin with: callcenter user add --role admin USERNAME "
    "(the password is asked for, or read from stdin)"
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may well resolve to a public address


def demo_refusal(settings: Settings) -> str | None:
    """Why the demo center (known passwords, the demo secret) may not run here, or None.

    Only development or test, with the API and the SIP edge bound to loopback: anywhere else
    ``pw1001`` would open an agent's desktop and register their softphone for anyone.
    """
    if settings.environment == "production":
        return "environment is production"
    for what, host in (("API", settings.http.host), ("SIP edge", settings.sip.edge_host)):
        if not _is_loopback(host):
            return f"the {what} listens on {host}, not on loopback"
    return None


def demo_credentials_in_use(ctx: AppContext) -> list[str]:
    """Every demo credential that still works, e.g. ``sign-in admin/pwadmin``, ``SIP 1001/pw1001``."""
    from callcenter.auth import verify_password
    from cti.models import Agent

    usernames = ["admin", "lead1", "qa1", *DEPARTMENT_STAFF.values(), *AGENT_EXTENSIONS]
    realm = ctx.config.telephony.sip_domain
    found: list[str] = []
    with ctx.sessions() as session:
        users = {
            u.username: u for u in session.scalars(select(User).where(User.username.in_(usernames)))
        }
        agents = {
            a.extension: a
            for a in session.scalars(select(Agent).where(Agent.extension.in_(AGENT_EXTENSIONS)))
        }
    for username in usernames:
        user = users.get(username)
        if user and user.active and verify_password(user.password_hash, demo_password(username)):
            found.append(f"sign-in {username}/{demo_password(username)}")
    for extension in AGENT_EXTENSIONS:
        agent = agents.get(extension)
        demo_ha1 = sip_ha1(extension, realm, demo_password(extension))
        if agent and agent.active and agent.sip_ha1.lower() == demo_ha1:
            found.append(f"SIP {extension}/{demo_password(extension)}")
    return found


def demo_passwords_in_use(ctx: AppContext) -> bool:
    """True while any demo account still accepts its demo password."""
    return bool(demo_credentials_in_use(ctx))


def prepare_for_start(ctx: AppContext) -> list[str]:
    """What ``up`` does about demo data: seed it where allowed, warn while it works, refuse it
    elsewhere. Returns the lines to print; raises DemoRefused when the center must not start."""
    lines: list[str] = []
    refusal = demo_refusal(ctx.settings)
    if refusal is None:
        if seed_demo(ctx):
            lines.append("demo center inserted (hotline 4008001234, agents 1001-1012)")
        if ctx.settings.secret_key == DEMO_SECRET:
            lines.append(
                "WARNING: the demo secret signs tokens (set CALLCENTER_SECRET_KEY before real use)"
            )
        in_use = demo_credentials_in_use(ctx)
        if in_use:
            lines.append(
                "WARNING: demo passwords are in use (change or disable them before real use): "
                + ", ".join(in_use)
            )
        return lines
    if ctx.settings.secret_key == DEMO_SECRET:
        raise DemoRefused(
            f"refusing to start with the demo secret: {refusal}; "
            "set CALLCENTER_SECRET_KEY to a long random value"
        )
    with ctx.sessions() as session:
        empty = is_empty(session)
    if empty:
        raise DemoRefused(
            f"refusing to insert the demo center: {refusal}. The database has no users: "
            + FIRST_ADMIN_HINT
        )
    in_use = demo_credentials_in_use(ctx)
    if in_use:
        raise DemoRefused(
            f"refusing to start: {refusal} and demo credentials work: {', '.join(in_use)}. "
            "Disable them (callcenter user disable NAME) or set new passwords "
            "(callcenter user passwd NAME; SIP passwords through PATCH /api/v1/users/{id})"
        )
    return lines


class DemoRefused(Exception):
    """The demo center may not run here; the message says why and what to do instead."""
