"""The SIP edge follows agent changes within seconds: the registrar's subscriber table is
rewritten (Kamailio re-reads it when its mtime changes) and, for a disabled agent, a changed
extension or SIP password, the registrations made with the old credentials are removed."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from callcenter.context import AppContext

log = logging.getLogger(__name__)


def follow(ctx: AppContext, *, drop: Iterable[str] = ()) -> None:
    # pure Python, no pjsua2: safe in the API and the CLI
    from ivr.edge.registrations import drop_registration
    from ivr.edge.subscribers import sync_subscribers

    try:
        sync_subscribers(ctx)
    except Exception:  # a boundary: the SQL change is committed; the engine re-syncs later
        log.exception("rewriting the edge's subscriber table failed")
        return
    # After the table: a phone re-registering right after its contact is removed must meet
    # the new credentials.
    for extension in dict.fromkeys(drop):
        try:
            drop_registration(ctx.settings, extension)
        except Exception:
            log.exception("removing the registration of %s from the edge failed", extension)
