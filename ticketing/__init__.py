"""Tickets (工单/派工单) and their lifecycle, dispatch, SLA timers, escalation, work orders,
satisfaction callbacks (回访) and webhooks."""
