"""Who may open which page, where each role lands after sign-in, and safe ``next=`` targets.

Pure rules (no I/O) so they are tested on their own; :mod:`pages.http` applies them.
"""

from __future__ import annotations

from callcenter.models import Role

# The page each role lands on after signing in. QA goes to the QA page and admins to the
# admin home when this build has them (``/qa``, ``/admin``), else to the index.
HOME: dict[Role, str] = {
    Role.agent: "/desktop",
    Role.lead: "/lead",
    Role.department: "/tickets",
    Role.qa: "/qa",
    Role.admin: "/admin",
}

# Roles allowed on each signed-in page; admins pass everywhere.
PAGE_ROLES: dict[str, frozenset[Role]] = {
    "desktop": frozenset({Role.agent, Role.lead}),
    "lead": frozenset({Role.lead}),
    "tickets": frozenset({Role.agent, Role.lead, Role.qa, Role.department}),
    # the overdue report (未按时完成记录并上报): leads and QA for the center, department staff
    # for their own department
    "overdue": frozenset({Role.lead, Role.qa, Role.department}),
    "wallboard": frozenset({Role.lead, Role.qa}),
    # The QA page (pages/qa.py, when the build mounts it): the roles that may find every
    # recording and score it (recordings/access.py READ_ALL and EVALUATE).
    "qa": frozenset({Role.qa, Role.lead}),
    # the what-if simulator (pages/whatif.py, /lead/whatif): staffing is the lead's call
    "whatif": frozenset({Role.lead}),
    # The admin pages (pages/admin.py): people, departments' contacts, the center's rules.
    "admin": frozenset(),
}

MAX_NEXT_LENGTH = 2000


def may_open(role: Role, page: str) -> bool:
    return role is Role.admin or role in PAGE_ROLES[page]


def home_for(role: Role, *, qa_page: bool, admin_page: bool = True) -> str:
    target = HOME[role]
    if (target == "/qa" and not qa_page) or (target == "/admin" and not admin_page):
        return "/"
    return target


def safe_next(target: str | None) -> str | None:
    """``target`` when it is a path on this site, else None.

    Refused: anything not starting with one ``/`` (``//evil``, ``http:``, relative paths), any
    backslash (browsers read ``/\\evil`` as ``//evil``), control characters and spaces
    (stripped by browsers, which could turn ``/\\t/evil`` into ``//evil``), overlong values.
    """
    if not target or len(target) > MAX_NEXT_LENGTH:
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 33 or ord(ch) == 127 for ch in target):
        return None
    return target
