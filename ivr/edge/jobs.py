"""RQ jobs for the SIP edge: module-level, no arguments to lose, safe to run twice."""

from __future__ import annotations

from callcenter.runtime import get_context
from ivr.edge.subscribers import sync_subscribers


def sync_edge_subscribers() -> list[str]:
    """Rewrite the registrar's credentials from the agents table (enqueue after agent changes).

    Returns the problems of agents left out. Running it twice writes the same file; an
    unchanged table is not rewritten at all.
    """
    return sync_subscribers(get_context())
