"""Settings and the declarative files an admin edits (menus, queues, shifts, dispatch, SLA)."""
