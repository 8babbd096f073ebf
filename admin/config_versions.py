"""Versions of the declarative files an admin edits through the API.

A document is the file's TOML structure as JSON. It is validated together with the other
files (their newest stored versions, else the files under ``config_dir``) exactly as
``check-config`` validates the directory; a bad one is refused with every problem, a good one
is stored as the file's next version with who, when and the diff. A rollback stores an older
version's document again, as a new version.

What a stored version changes at once, and what waits for a restart (docs/admin.md):
- every process reads the newest stored versions when it starts (``config_store``);
- ``apply_live``: the process that stored the version uses the new configuration from the
  next request on; a ``queues`` version is copied into the routing settings in Redis, which
  the routing script reads at each offer (ring time, wrap-up, strategy, overflow, callback
  offer): the next offer uses it, a call already ringing keeps the ring time it was offered
  with; and a notice tells the API, router and worker processes to reload
  (``config_watch``); the engine's supervisor polls the same notice and hands new calls the
  new version once its prompts are rendered (``ivr/engine_reload.py``), the SIP edge reloads
  its DIDs, trunks, outbound trunk, dial plan and domain (data in htables, ``ivr/edge/rules.py``:
  no restart, calls in progress untouched).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from admin.edge_checks import edge_problem
from callcenter.audit import record as record_audit
from callcenter.config_store import latest_documents
from callcenter.context import AppContext
from callcenter.errors import InvalidInput, NotFound
from callcenter.models import ConfigVersion
from config.loader import CenterConfig, ConfigError, config_with
from cti import reference_data

# Files whose codes SQL mirrors (``cti.reference_data``): kept current by each version.
MIRRORED = frozenset({"queues", "shifts", "dispatch"})
EDITABLE = ("menu", "queues", "shifts", "dispatch", "callbacks", "telephony", "webhooks")


def filename(name: str) -> str:
    if name not in EDITABLE:
        raise NotFound(
            f"没有这个配置文件 / no declarative file {name!r}; known: {', '.join(EDITABLE)}",
            details={"file": name, "known": list(EDITABLE)},
        )
    return f"{name}.toml"


def _latest(session: Session, name: str) -> ConfigVersion | None:
    return session.scalar(
        select(ConfigVersion)
        .where(ConfigVersion.file == name)
        .order_by(ConfigVersion.version.desc())
        .limit(1)
    )


def file_document(ctx: AppContext, name: str) -> dict[str, Any]:
    """The document as the file under ``config_dir`` holds it."""
    path = ctx.settings.config_dir / filename(name)
    return tomllib.loads(path.read_text(encoding="utf-8"))


def current(session: Session, ctx: AppContext, *, name: str) -> tuple[int, dict[str, Any]]:
    """The newest document of a file and its version (0: the file itself, never stored)."""
    filename(name)
    latest = _latest(session, name)
    if latest is None:
        return 0, file_document(ctx, name)
    return latest.version, dict(latest.document)


def stored_config(session: Session, ctx: AppContext) -> CenterConfig:
    """The files as the newest stored versions make them (the others as under config_dir)."""
    documents = latest_documents(session)
    return config_with(ctx.config, documents) if documents else ctx.config


def flat(document: Any, prefix: str = "") -> dict[str, Any]:
    """``{"queues.general.ring_timeout": 20, ...}``: leaves by dotted key (lists kept whole)."""
    if isinstance(document, dict) and document:
        out: dict[str, Any] = {}
        for key, value in document.items():
            out.update(flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix or "(top level)": document}


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    old, new = flat(before), flat(after)
    return [
        {"key": key, "before": old.get(key), "after": new.get(key)}
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key) or (key in old) != (key in new)
    ]


def validate(
    session: Session, ctx: AppContext, *, name: str, document: dict[str, Any]
) -> CenterConfig:
    """The configuration ``document`` would make, or InvalidInput listing every problem."""
    try:
        changed = config_with(stored_config(session, ctx), {filename(name): document})
    except ConfigError as exc:
        items = exc.items
    else:
        items = []
        if name == "telephony":
            from ivr.edge.config import edge_config_problems  # pure Python: no pjsua2

            items = [edge_problem(line) for line in edge_config_problems(ctx.settings, changed)]
        if not items:
            return changed
    # ``problems``: the lines check-config prints; ``items``: the same with their kind and
    # values, for pages that show them in the reader's language.
    raise InvalidInput(
        f"{filename(name)}: {len(items)} problem(s); nothing was stored",
        details={
            "file": name,
            "problems": [str(item) if item.file else item.message for item in items],
            "items": [item.public() for item in items],
        },
    )


@dataclass
class Stored:
    version: ConfigVersion
    created: bool  # False: the document was unchanged and nothing was stored
    config: CenterConfig  # the whole configuration with this version


def store(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    name: str,
    document: dict[str, Any],
    note: str | None = None,
    rollback_of: int | None = None,
) -> Stored:
    """Validate and store ``document`` as the file's next version. An unchanged document
    stores nothing and returns the current version."""
    config = validate(session, ctx, name=name, document=document)
    version, previous = current(session, ctx, name=name)
    changes = diff(previous, document)
    latest = _latest(session, name)
    if not changes and latest is not None:
        return Stored(latest, False, config)
    number = (session.scalar(select(func.max(ConfigVersion.version)).where(
        ConfigVersion.file == name)) or 0) + 1  # fmt: skip
    row = ConfigVersion(
        file=name,
        version=number,
        document=document,
        diff=changes,
        author=actor,
        note=note,
        rollback_of=rollback_of,
    )
    session.add(row)
    session.flush()
    if name in MIRRORED:  # agents and contacts may refer to a new code at once
        reference_data.mirror(session, config)
    record_audit(
        session, actor=actor,
        action="config.rollback" if rollback_of is not None else "config.update",
        object_type="config", object_id=name,
        details={"version": number, "previous_version": version, "diff": changes,
                 "rollback_of": rollback_of,
                 # the changed dotted keys (absent: not in that version)
                 "before": {c["key"]: c["before"] for c in changes if c["key"] in flat(previous)},
                 "after": {c["key"]: c["after"] for c in changes if c["key"] in flat(document)}},
    )  # fmt: skip
    return Stored(row, True, config)


def get_version(session: Session, *, name: str, version: int) -> ConfigVersion:
    filename(name)
    row = session.scalar(
        select(ConfigVersion).where(ConfigVersion.file == name, ConfigVersion.version == version)
    )
    if row is None:
        raise NotFound(
            f"版本不存在 / {name} has no version {version}",
            details={"file": name, "version": version},
        )
    return row


def versions(session: Session, *, name: str) -> list[ConfigVersion]:
    filename(name)
    return list(
        session.scalars(
            select(ConfigVersion)
            .where(ConfigVersion.file == name)
            .order_by(ConfigVersion.version.desc())
        )
    )


def rollback(session: Session, ctx: AppContext, *, actor: str, name: str, version: int) -> Stored:
    """Store version ``version``'s document again as the newest version (0: the file under
    config_dir). Validated against the other files as they are now: a rollback that no longer
    fits them is refused."""
    if version == 0:  # the file under config_dir, as it was before any stored version
        document = file_document(ctx, name)
    else:
        document = dict(get_version(session, name=name, version=version).document)
    return store(
        session, ctx, actor=actor, name=name, document=document,
        note=f"rollback to version {version}", rollback_of=version,
    )  # fmt: skip


@dataclass
class Applied:
    live: list[str]  # what took the version at once (or takes it for the next call)
    restart_needed: list[str]  # dotted settings a running process takes only at its restart


def apply_live(ctx: AppContext, config: CenterConfig, *, name: str, version: int) -> Applied:
    """After the commit: use ``config`` in this process from now on; for ``queues``, copy the
    routing settings into Redis for every router and retire the queues it no longer has; tell
    every watching process (API workers, routers, workers, the engine's supervisor) to reload.
    Returns what was applied and what waits for a restart, for the answer."""
    from callcenter.config_watch import publish_change, use_config
    from cti.services import routing_for
    from ivr.live_config import ENGINE_FILES

    use_config(ctx, config)
    applied = ["this API process"]
    if name == "queues":
        retired = routing_for(ctx).sync_queues()
        applied.append("queue routing settings of every router (next offer)")
        if retired.get("retired"):
            applied.append(
                f"queues removed from routing: {', '.join(retired['retired'])} "
                f"({retired.get('moved', 0)} waiting call(s) moved)"
            )
    publish_change(ctx, file=name, version=version)
    applied.append("API, router and worker processes (reload notice)")
    if name in ENGINE_FILES:
        applied.append(
            "engine: new calls, once the changed prompts are rendered (calls in progress keep "
            "the version they started with)"
        )
    if name == "telephony":
        # Everything the edge takes from telephony.toml is data it reloads (ivr/edge/rules.py).
        applied.append(
            "SIP edge: DIDs, trunks, outbound trunk, dial plan, domain (reloaded at once)"
        )
    # Nothing a stored version changes waits for a restart any more; the field stays for
    # clients, always empty.
    return Applied(applied, [])
