"""Who may find, hear and download which recording (one place; every route asks here).

Shift leads, QA and admins: every recording. An agent: the recordings of calls they
answered. Department staff and anyone else: none. Downloading (keeping a copy) is for leads,
QA and admins only; an agent may play their own calls but not take them away.
"""

from __future__ import annotations

from callcenter.auth import Principal
from callcenter.errors import Forbidden
from callcenter.models import Role
from recordings.errors import RECORDING_FORBIDDEN
from recordings.models import Recording

READ_ALL = frozenset({Role.lead, Role.qa, Role.admin})
DOWNLOAD = READ_ALL
EVALUATE = frozenset({Role.qa, Role.lead, Role.admin})


def search_scope(principal: Principal) -> int | None:
    """None: every recording; else the only agent id whose recordings may be found."""
    if principal.role in READ_ALL:
        return None
    if principal.role is Role.agent and principal.agent_id is not None:
        return principal.agent_id
    raise Forbidden(
        "only shift leads, QA, admins and agents (their own calls) may find recordings",
        details={"role": str(principal.role)},
        error_id=RECORDING_FORBIDDEN,
    )


def may_play(principal: Principal, recording: Recording, call_agent_id: int | None) -> bool:
    if principal.role in READ_ALL:
        return True
    return (
        principal.role is Role.agent
        and principal.agent_id is not None
        and principal.agent_id in {recording.agent_id, call_agent_id}
    )


def may_download(principal: Principal) -> bool:
    return principal.role in DOWNLOAD
