"""A satisfaction callback to a number outside telephony.toml's dial plan is never dialled."""

from __future__ import annotations

from tests.tickets.conftest import MakeCtx
from tests.tickets.helpers import placed_calls, survey_commands
from tests.tickets.test_callbacks import callback_of, callbacks_toml, local, place, to_front_desk


def test_callback_to_a_number_outside_the_dial_plan_is_unreachable_not_dialled(
    make_ctx: MakeCtx,
) -> None:
    ctx = make_ctx(**{"callbacks.toml": callbacks_toml(other_share=1.0)})
    # An international contact: it looked like a landline to the number classifier.
    ticket_id = to_front_desk(
        ctx, local(2026, 12, 7, 10, 0), local(2026, 12, 7, 10, 20), contact="004420712345"
    )
    cb = callback_of(ctx, ticket_id)
    assert cb["status"] == "scheduled" and cb["number"] == "004420712345"
    place(ctx, cb["id"], cb["scheduled_for"])
    assert placed_calls(ctx) == [] and survey_commands(ctx) == []
    done = callback_of(ctx, ticket_id)
    assert done["status"] == "unreachable"
    assert "international number 004420712345 is not allowed" in done["reason"]
